"""Which provider an OpenAI-compatible client talks to: from its class and its ``base_url``.

Many providers serve the OpenAI wire format (DeepSeek, Groq, OpenRouter,
Together, Fireworks, xAI, Mistral, Moonshot, local servers), so the openai
client alone does not say whose model answered, nor at whose prices. The
answer, in order:

1. an ``AzureOpenAI`` client is ``azure.ai.openai`` whatever its URL;
2. a host on this machine or a private network (``localhost``, ``127.0.0.1``,
   ``10.x``, ``192.168.x``, ``*.local``, ``host.docker.internal``) is ``local``:
   Ollama, vLLM, LM Studio, priced only by an override;
3. the URL matched against genai-prices' own provider API patterns (so a
   provider genai-prices learns about is recognised without a change here),
   then a small table of hosts genai-prices has no pattern for;
4. anything else is ``openai``, as before (api.openai.com, or a proxy in front of it).

The result is a ``gen_ai.provider.name`` value (semconv's well-known names where
it has one, else the genai-prices id) that ``pricing`` maps back to genai-prices.
Pure: no OpenTelemetry, no SDK import; results are cached per URL.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Final
from urllib.parse import urlsplit

from .. import semconv

# Hosts genai-prices has no API pattern for (it matches all of googleapis.com as "google").
_HOST_SUFFIXES: Final = (
    ("generativelanguage.googleapis.com", semconv.PROVIDER_GCP_GEMINI),
    ("aiplatform.googleapis.com", semconv.PROVIDER_GCP_VERTEX_AI),
)
_LOCAL_NAMES: Final = frozenset({"localhost", "host.docker.internal", "gateway.docker.internal", "0.0.0.0"})
_LOCAL_SUFFIXES: Final = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
_AZURE_CLASSES: Final = frozenset({"AzureOpenAI", "AsyncAzureOpenAI", "BaseAzureClient"})

_patterns: list[tuple[re.Pattern[str], str]] | None = None
_by_url: dict[str, str] = {}


def is_local_host(host: str) -> bool:
    """True for a loopback, private, link-local or ``.local`` host: a model served nearby."""
    host = host.strip("[]").lower().rstrip(".")
    if host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified


def _genai_prices_patterns() -> list[tuple[re.Pattern[str], str]]:
    """genai-prices' providers as (compiled api_pattern, gen_ai.provider.name), in its order."""
    global _patterns
    if _patterns is None:
        from genai_prices import data_snapshot

        found: list[tuple[re.Pattern[str], str]] = []
        for provider in data_snapshot.get_snapshot().providers:
            pattern = getattr(provider, "api_pattern", None)
            if not isinstance(pattern, str) or not pattern:
                continue
            try:
                compiled = re.compile(pattern, re.IGNORECASE)
            except re.error:
                continue
            found.append((compiled, semconv.PROVIDER_OF_GENAI_PRICES_ID.get(provider.id, provider.id)))
        _patterns = found
    return _patterns


def provider_of_url(url: str) -> str:
    """The ``gen_ai.provider.name`` of the endpoint at ``url`` (``openai`` when nothing else fits)."""
    cached = _by_url.get(url)
    if cached is not None:
        return cached
    provider = _provider_of_url(url)
    if len(_by_url) >= 256:  # bounded: a program talks to a handful of endpoints
        _by_url.clear()
    _by_url[url] = provider
    return provider


def _provider_of_url(url: str) -> str:
    try:
        parts = urlsplit(url if "//" in url else f"https://{url}")
        host = (parts.hostname or "").lower()
    except ValueError:
        return semconv.PROVIDER_OPENAI
    if not host:
        return semconv.PROVIDER_OPENAI
    if is_local_host(host):
        return semconv.PROVIDER_LOCAL
    for suffix, provider in _HOST_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return provider
    # genai-prices' patterns start with the scheme and are matched from the start.
    normalised = f"{parts.scheme or 'https'}://{parts.netloc}{parts.path}".lower()
    candidates = (normalised, normalised.replace("http://", "https://", 1))
    for pattern, provider in _genai_prices_patterns():
        if any(pattern.match(c) for c in candidates):
            return provider
    return semconv.PROVIDER_OPENAI


def is_azure_client(client: Any) -> bool:
    return any(cls.__name__ in _AZURE_CLASSES for cls in type(client).__mro__)


def provider_of_client(client: Any) -> str:
    """The provider an openai client (``OpenAI``, ``AzureOpenAI``, async ones) sends its requests to."""
    if client is None:
        return semconv.PROVIDER_OPENAI
    if is_azure_client(client):
        return semconv.PROVIDER_AZURE_OPENAI
    base_url = getattr(client, "base_url", None)
    if base_url is None:
        return semconv.PROVIDER_OPENAI
    return provider_of_url(str(base_url))
