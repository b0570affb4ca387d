"""Usage -> USD: genai-prices list prices, user overrides and service tiers.

Pure on purpose (no OpenTelemetry here beyond the names in ``semconv``): the
instrumentations price each call with :meth:`Pricer.price`, and the store prices
spans that other SDKs sent with :meth:`Pricer.price_attributes`. Pricing never
touches the network: genai-prices' bundled table is used as installed.

A price that is not known is ``None`` (``runtrace.cost.source=unknown``) and is
counted as unpriced, never shown as $0; a local model priced at zero by the user
*is* a price and is reported as one.

Token accounting follows OpenTelemetry and genai-prices: ``input_tokens`` is the
total input with cache reads and cache writes as parts of it (OpenAI's count is
already that; an Anthropic instrumentation adds ``cache_read_input_tokens`` and
``cache_creation_input_tokens`` to Anthropic's ``input_tokens`` first), and
``output_tokens`` includes reasoning.

Overrides file (``RUNTRACE_PRICES=/path/prices.toml`` or
``instrument(prices="prices.toml")``), prices in USD::

    # Keys are "model" or "provider:model"; the provider-qualified one wins.
    [models."my-llama"]          # a local model, priced per second of the call
    per_second = 0.0004

    [models."openai:gpt-5.5"]    # a negotiated price; beats the list price
    input_per_mtok = 4.0         # per million input tokens (required with output_per_mtok)
    output_per_mtok = 24.0       # per million output tokens, reasoning included
    cache_read_per_mtok = 0.4    # optional, default: input_per_mtok
    cache_write_per_mtok = 5.0   # optional, default: input_per_mtok

    [models."ollama:qwen3"]      # free is a real price ($0), not an unknown one
    input_per_mtok = 0
    output_per_mtok = 0

    [tiers]                      # used when genai-prices has no price for a served tier
    priority = 1.8               # x the standard price
    flex = 0.5
    batch = 0.5

``per_second`` can be combined with token prices; its cost is part of the total
but of neither the input nor the output split. An override applies to its model
whatever the served tier; a non-standard tier on an overridden model is marked
``tier_matched=False`` and gets the ``[tiers]`` multiplier when there is one.

The package, one module a job: :mod:`.types` (the values), :mod:`.overrides`
(parsing and validating the user's prices), :mod:`.pricer` (pricing one call,
the per-call path), :mod:`.genai` (genai-prices through its public API, and
the per-price-set caches), :mod:`.attributes` (usage read from a span another
SDK sent, priced once at ingest) and :mod:`.default` (the shared Pricer).
"""

from __future__ import annotations

import sys
import types as _types

from . import default as _default_module
from .attributes import needs_pricing
from .default import default_pricer, load_prices_file, set_default_pricer
from .genai import GENAI_PRICES_TABLE
from .pricer import Pricer
from .types import ModelOverride, Price, TokenUsage

__all__ = [
    "GENAI_PRICES_TABLE",
    "ModelOverride",
    "Price",
    "Pricer",
    "TokenUsage",
    "default_pricer",
    "load_prices_file",
    "needs_pricing",
    "set_default_pricer",
]


class _Package(_types.ModuleType):
    """``runtrace.pricing._default`` reads and writes the shared Pricer where :mod:`.default` keeps it.

    Tests forget a Pricer built by earlier tests with ``pricing._default = None``,
    as they did when this package was one module.
    """

    @property
    def _default(self) -> Pricer | None:
        return _default_module._default

    @_default.setter
    def _default(self, pricer: Pricer | None) -> None:
        set_default_pricer(pricer)


sys.modules[__name__].__class__ = _Package
