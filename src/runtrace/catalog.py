"""genai-prices' catalogue as targets for repricing: its providers with chat models, and their models' prices.

The What-if page's provider picker and model list, and ``runtrace reprice
--provider P`` without a model, read it. A model is listed only if the shared
Pricer prices it (so a listed model is one the page can reprice) and it has both
an input and an output price (an input-only model, embeddings or a legacy
completion model, is no target for chat calls); fine-tune name patterns and
non-chat models (speech, images, embeddings ...) are left out. Built from
``genai_prices.data_snapshot.get_snapshot().providers``, cached until the price
table is swapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from genai_prices import data_snapshot

from . import semconv
from ._forksafe import ForkSafeLock
from .pricing import TokenUsage, default_pricer

__all__ = ["COMMON_PROVIDERS", "ModelChoice", "ProviderChoice", "genai_provider_id", "model_catalog", "models_of",
           "provider_choices"]

COMMON_PROVIDERS = ("openai", "anthropic", "google")

# Kinds of model that are not a target for an agent's chat calls (speech, images, embeddings ...).
_NOT_CHAT = ("embedding", "tts", "transcribe", "whisper", "moderation", "image", "audio", "realtime", "live",
             "robotics", "nano-banana", "search", "computer-use", "deep-research")
# Models a provider resells from another of the common providers (Vertex AI serves Anthropic's):
# they are listed under their maker only; the provider field still prices them at the reseller.
_RESOLD = {"google": ("claude-",)}
_REGIONAL = "regional."
_PROBE_TOKENS = 100_000  # under every long-prompt price threshold; scaled to a price per million
@dataclass(frozen=True, slots=True)
class ModelChoice:
    """One entry of the target drop-down, with its list price today."""

    provider: str
    model: str
    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    per_request: float | None = None

    @property
    def value(self) -> str:
        return f"{self.provider}:{self.model}"

    @property
    def detail(self) -> str:
        """The prices beyond input and output, or which of them the model does not have."""
        parts = [f"cached read ${_per_mtok(self.cache_read_per_mtok)}/Mtok" if self.cache_read_per_mtok is not None
                 else "cached reads charged as input",
                 f"cache write ${_per_mtok(self.cache_write_per_mtok)}/Mtok"
                 if self.cache_write_per_mtok is not None else "cache writes charged as input"]
        if self.per_request is not None:
            parts.append(f"${self.per_request:g} per request")
        return ", ".join(parts)

    @property
    def label(self) -> str:
        return (f"{self.model}  \u00b7  ${_per_mtok(self.input_per_mtok)} in / "
                f"${_per_mtok(self.output_per_mtok)} out per Mtok")


def _per_mtok(value: float) -> str:
    return f"{value:.2f}" if value >= 0.1 or value == 0 else f"{value:.3f}".rstrip("0")


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    """One entry of the provider drop-down: a genai-prices provider with chat models."""

    id: str
    name: str


_catalog_lock = ForkSafeLock()
_catalog: tuple[object, dict[str, list[ModelChoice]]] | None = None
# snapshot -> ({(provider id, resold models left out) -> its choices}, the provider drop-down)
_by_provider: tuple[object, dict[tuple[str, bool], list[ModelChoice]], list[ProviderChoice]] | None = None


def _is_chat(provider_id: str, info: Any, leave_out_resold: bool) -> bool:
    name = info.id
    return not (name.endswith("-") or ".ft-" in name or info.deprecated
                or name.startswith(("ft:", *(_RESOLD.get(provider_id, ()) if leave_out_resold else ())))
                or any(word in name for word in _NOT_CHAT))


def _choices(provider: Any, leave_out_resold: bool) -> list[ModelChoice]:
    """A provider's chat models that have both an input and an output price, by name."""
    pricer = default_pricer()
    usage = TokenUsage(_PROBE_TOKENS, _PROBE_TOKENS)
    scale = 1_000_000 / _PROBE_TOKENS
    now = datetime.now(timezone.utc)
    choices: list[ModelChoice] = []
    for info in provider.models:
        if not _is_chat(provider.id, info, leave_out_resold):
            continue
        # genai-prices files Bedrock's in-region models as "regional.<model id>", a name its own
        # matching does not always resolve; the model id it stands for does, and is what a call sends.
        ref = info.id[len(_REGIONAL):] if info.id.startswith(_REGIONAL) else info.id
        price = pricer.price(usage, model=ref, provider=provider.id)
        if price.total_usd is None or price.input_usd is None or price.output_usd is None:
            continue
        listed = info.get_prices(now)
        if getattr(listed, "output_mtok", None) is None:
            continue  # an input-only model (embeddings, legacy completions) is no target for chat calls
        extra = {name: _flat(getattr(listed, key, None)) for name, key in (
            ("cache_read_per_mtok", "cache_read_mtok"), ("cache_write_per_mtok", "cache_write_mtok"))}
        requests = _flat(getattr(listed, "requests_kcount", None))
        choices.append(ModelChoice(provider.id, ref, price.input_usd * scale, price.output_usd * scale,
                                   extra["cache_read_per_mtok"], extra["cache_write_per_mtok"],
                                   None if requests is None else requests / 1000))
    return sorted(choices, key=lambda c: c.model)


def _flat(value: object) -> float | None:
    """A flat price as a float; a tiered one by its base price; None when there is none."""
    if value is None:
        return None
    base = getattr(value, "base", value)
    try:
        return float(base)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _provider_index() -> tuple[dict[tuple[str, bool], list[ModelChoice]], list[ProviderChoice]]:
    global _by_provider
    snapshot = data_snapshot.get_snapshot()
    cached = _by_provider
    if cached is not None and cached[0] is snapshot:
        return cached[1], cached[2]
    with _catalog_lock:
        listed = [ProviderChoice(p.id, p.name) for p in snapshot.providers
                  if any(_is_chat(p.id, info, False) for info in p.models)]
        common = [c for pid in COMMON_PROVIDERS for c in listed if c.id == pid]
        rest = sorted((c for c in listed if c.id not in COMMON_PROVIDERS), key=lambda c: c.name.lower())
        _by_provider = (snapshot, {}, common + rest)
        return _by_provider[1], _by_provider[2]


def provider_choices() -> list[ProviderChoice]:
    """Every genai-prices provider that lists a chat model: the common three first, then by name."""
    return _provider_index()[1]


def models_of(provider_id: str) -> list[ModelChoice] | None:
    """A provider's chat models with their prices (models it resells included); None for no such provider.

    Built on first use per provider (OpenRouter alone lists hundreds) and kept
    until the price table is swapped.
    """
    cache, providers = _provider_index()
    if provider_id not in {p.id for p in providers}:
        return None
    key = (provider_id, False)
    found = cache.get(key)
    if found is None:
        provider = next(p for p in data_snapshot.get_snapshot().providers if p.id == provider_id)
        found = cache[key] = _choices(provider, leave_out_resold=False)
    return found


def model_catalog() -> dict[str, list[ModelChoice]]:
    """The chat models genai-prices' bundled table prices for openai, anthropic and google, by provider.

    Built from ``genai_prices.data_snapshot.get_snapshot().providers`` and priced
    with the shared Pricer, so a model the drop-down offers is one the page can
    reprice; fine-tune name patterns and non-chat models are left out. Cached
    until the price table is swapped.
    """
    global _catalog
    snapshot = data_snapshot.get_snapshot()
    cached = _catalog
    if cached is not None and cached[0] is snapshot:
        return cached[1]
    with _catalog_lock:
        found = {provider.id: _choices(provider, leave_out_resold=True) for provider in snapshot.providers
                 if provider.id in COMMON_PROVIDERS}
        ordered = {p: found[p] for p in COMMON_PROVIDERS if found.get(p)}
        _catalog = (snapshot, ordered)
        return ordered




def genai_provider_id(provider: str) -> str:
    """genai-prices' id for a provider named either way (``aws.bedrock`` or ``aws``)."""
    name = provider.strip().lower()
    return semconv.GENAI_PRICES_PROVIDER_IDS.get(name, name)
