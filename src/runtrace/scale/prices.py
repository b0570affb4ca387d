"""genai-prices' bundled table, flattened into rows of ClickHouse's ``runtrace_prices``.

The scale path prices spans from other SDKs in SQL (collector/clickhouse/
03_runtrace_spans.sql); for its figures to equal the embedded store's, it must
use the same price data and the same rules as :mod:`runtrace.pricing`:

- a span's ``gen_ai.provider.name`` selects the genai-prices provider the way
  :class:`runtrace.pricing.Pricer` does (its aliases, then genai-prices' own
  provider matching), so each row lists every provider name that selects it;
- the first model of that provider whose match logic accepts the model wins,
  then the fallback providers' models (Azure serving OpenAI's), in order;
- the price period active on the span's date applies; tiers are cliffs on the
  call's total input; cache reads/writes with no price of their own are charged
  as plain input.

Match logic becomes RE2 patterns in disjunctive normal form (``match_any``:
alternatives, each a list of patterns that must all match), because ClickHouse
has no other way to evaluate genai-prices' nested and/or clauses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import product
from typing import NamedTuple

from genai_prices import data_snapshot
from genai_prices.data_snapshot import find_provider_by_id
from genai_prices.types import (
    ClauseAnd,
    ClauseContains,
    ClauseEndsWith,
    ClauseEquals,
    ClauseOr,
    ClauseRegex,
    ClauseStartsWith,
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TieredPrices,
)
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _g

from .. import pricing
from ..pricing.pricer import PROVIDER_ALIASES, genai_provider

__all__ = ["PriceRow", "TABLE", "price_rows", "provider_names", "to_clickhouse_sql", "to_tsv", "to_dnf"]

TABLE = "otel.runtrace_prices"
COLUMNS = ("provider_id", "provider_names", "rank", "model_id", "match_any", "valid_from", "input_mtok",
           "input_tiers", "cache_read_mtok", "cache_read_tiers", "cache_write_mtok", "cache_write_tiers",
           "output_mtok", "output_tiers", "price_table")
_RE_SPECIAL = frozenset("\\.^$|?*+()[]{}")
# Python regex features RE2 (ClickHouse's engine) lacks: lookaround, backreferences.
_UNSUPPORTED_RE2 = re.compile(r"\(\?<?[=!]|\\[1-9]|\(\?P=")
_NEGATIVE_LOOKAHEAD = re.compile(r"\^\(\?!(.*)\)")


class _NotRE2(ValueError):
    """A match pattern ClickHouse cannot evaluate; the alternative holding it is left out."""

EPOCH = date(1970, 1, 1)
# rank = provider's own models first, then each fallback provider's, in order
_FALLBACK_STRIDE = 100_000



class Tier(NamedTuple):
    """A cliff: once a call's total input exceeds ``start`` tokens, ``price`` applies to all of them."""

    start: int
    price: float


Tiers = tuple[Tier, ...]


@dataclass(frozen=True, slots=True)
class PriceRow:
    """One row of ``otel.runtrace_prices`` (column order = the table's)."""

    provider_id: str
    provider_names: tuple[str, ...]
    rank: int
    model_id: str
    match_any: tuple[tuple[str, ...], ...]
    valid_from: date
    input_mtok: float
    input_tiers: Tiers
    cache_read_mtok: float | None
    cache_read_tiers: Tiers
    cache_write_mtok: float | None
    cache_write_tiers: Tiers
    output_mtok: float
    output_tiers: Tiers
    price_table: str


def _escape_re(text: str) -> str:
    """Escape RE2 metacharacters only (``re.escape`` also escapes spaces, which RE2 rejects)."""
    return "".join("\\" + c if c in _RE_SPECIAL else c for c in text)


def _re2(regex: str) -> str:
    """A Python regex as RE2, which has no lookaround: ``^(?!X)`` becomes ``!^X`` (must not match)."""
    whole = _NEGATIVE_LOOKAHEAD.fullmatch(regex)
    if whole is not None:
        inner = whole.group(1)
        if not _UNSUPPORTED_RE2.search(inner):
            return "!^" + inner
    if _UNSUPPORTED_RE2.search(regex):
        raise _NotRE2(regex)
    return regex


def to_dnf(clause: object) -> list[list[str]]:
    """genai-prices match logic -> alternatives of case-insensitive RE2 patterns (all must match)."""
    if isinstance(clause, ClauseEquals):
        return [[f"(?i)^{_escape_re(clause.equals)}$"]]
    if isinstance(clause, ClauseStartsWith):
        return [[f"(?i)^{_escape_re(clause.starts_with)}"]]
    if isinstance(clause, ClauseEndsWith):
        return [[f"(?i){_escape_re(clause.ends_with)}$"]]
    if isinstance(clause, ClauseContains):
        return [[f"(?i){_escape_re(clause.contains)}"]]
    if isinstance(clause, ClauseRegex):
        # genai-prices matches its regexes against the lower-cased model name
        return [[_re2(clause.regex)]]
    if isinstance(clause, ClauseOr):
        alternatives: list[list[str]] = []
        for sub in clause.or_:
            try:
                alternatives.extend(to_dnf(sub))
            except _NotRE2:
                continue  # leaving an alternative out can only leave a model unpriced in SQL
        return alternatives
    if isinstance(clause, ClauseAnd):
        parts = [to_dnf(sub) for sub in clause.and_]
        return [[p for alt in combo for p in alt] for combo in product(*parts)]
    raise ValueError(f"unsupported genai-prices match clause: {clause!r}")


def _known_provider_names() -> set[str]:
    names = {v.value for v in _g.GenAiProviderNameValues} | {v.value for v in _g.GenAiSystemValues}
    names |= set(PROVIDER_ALIASES)
    return {n.lower() for n in names}


def provider_names(providers: Sequence[Provider]) -> dict[str, tuple[str, ...]]:
    """genai-prices provider id -> every gen_ai.provider.name that runtrace.pricing maps to it."""
    candidates = _known_provider_names() | {p.id.lower() for p in providers}
    out: dict[str, set[str]] = {p.id: set() for p in providers}
    for name in candidates:
        gp_name = genai_provider(name)
        found = find_provider_by_id(list(providers), gp_name) if gp_name else None
        if found is not None:
            out[found.id].add(name)
    return {pid: tuple(sorted(names)) for pid, names in out.items()}


def _rate(value: Decimal | TieredPrices | None) -> tuple[float | None, Tiers]:
    if value is None:
        return None, ()
    if isinstance(value, TieredPrices):
        return float(value.base), tuple(Tier(int(t.start), float(t.price)) for t in value.tiers)
    return float(value), ()


def _periods(model: ModelInfo) -> Iterator[tuple[date, ModelPrice]]:
    """(valid_from, prices) for each dated price period; time-of-day prices are skipped."""
    if isinstance(model.prices, ModelPrice):
        yield EPOCH, model.prices
        return
    prices: list[ConditionalPrice] = model.prices
    # genai-prices uses the first entry when no constraint is active
    yield EPOCH, prices[0].prices
    for cp in prices:
        if cp.constraint is None:
            yield EPOCH, cp.prices
        elif isinstance(cp.constraint, StartDateConstraint):
            yield cp.constraint.start_date, cp.prices


def _rows_for(provider: Provider, names: tuple[str, ...], models: Sequence[ModelInfo], base_rank: int,
              table: str) -> Iterator[PriceRow]:
    for i, model in enumerate(models):
        try:
            dnf = tuple(tuple(alt) for alt in to_dnf(model.match))
        except _NotRE2:
            continue
        if not dnf:
            continue
        latest: dict[date, ModelPrice] = {}
        for valid_from, mp in _periods(model):
            latest[valid_from] = mp  # later entries take precedence, as in genai-prices
        for valid_from, mp in sorted(latest.items()):
            inp, inp_t = _rate(mp.input_mtok)
            out, out_t = _rate(mp.output_mtok)
            if inp is None and out is None:
                continue  # priced in units SQL does not see (audio seconds, searches, ...)
            cr, cr_t = _rate(mp.cache_read_mtok)
            cw, cw_t = _rate(mp.cache_write_mtok)
            yield PriceRow(provider.id, names, base_rank + i, model.id, dnf, valid_from,
                           inp or 0.0, inp_t, cr, cr_t, cw, cw_t, out or 0.0, out_t, table)


def price_rows() -> list[PriceRow]:
    """Every row, from the same genai-prices snapshot runtrace.pricing uses."""
    providers = data_snapshot.get_snapshot().providers
    names = provider_names(providers)
    table = pricing.GENAI_PRICES_TABLE
    rows: list[PriceRow] = []
    for provider in providers:
        rows.extend(_rows_for(provider, names[provider.id], provider.models, 0, table))
        for k, fallback_id in enumerate(provider.fallback_model_providers or (), start=1):
            fallback = next((p for p in providers if p.id == fallback_id), None)
            if fallback is not None:
                rows.extend(_rows_for(provider, names[provider.id], fallback.models,
                                      k * _FALLBACK_STRIDE, table))
    return rows


# --- serialising ------------------------------------------------------------------


def _literal(value: object) -> str:
    """A ClickHouse literal (Values format, and array elements in any text format)."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, date):
        return f"'{value.isoformat()}'"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Tier):
        return f"({value.start},{value.price!r})"
    if isinstance(value, tuple):
        return "[" + ",".join(_literal(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as a ClickHouse literal")


def _values(row: PriceRow) -> list[str]:
    return [_literal(getattr(row, c)) for c in COLUMNS]


def to_clickhouse_sql(rows: Sequence[PriceRow], *, table: str = TABLE, chunk: int = 500) -> str:
    """``TRUNCATE`` + ``INSERT ... VALUES`` statements that replace the whole price table."""
    parts = [f"TRUNCATE TABLE IF EXISTS {table};"]
    for i in range(0, len(rows), chunk):
        values = ",\n".join("(" + ", ".join(_values(r)) + ")" for r in rows[i:i + chunk])
        parts.append(f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES\n{values};")
    return "\n".join(parts) + "\n"


def _tsv_field(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def to_tsv(rows: Sequence[PriceRow]) -> str:
    """TabSeparated rows for ``INSERT INTO otel.runtrace_prices FORMAT TabSeparated``."""
    lines = []
    for row in rows:
        fields = []
        for c in COLUMNS:
            value = getattr(row, c)
            if value is None:
                fields.append("\\N")
            elif isinstance(value, str):
                fields.append(_tsv_field(value))
            elif isinstance(value, date):
                fields.append(value.isoformat())
            else:
                # arrays and tuples are read as quoted literals, with no TSV unescaping on top
                literal = _literal(value)
                if "\t" in literal or "\n" in literal:
                    raise ValueError(f"{c} of {row.model_id!r} holds a tab or newline; use the SQL format")
                fields.append(literal)
        lines.append("\t".join(fields))
    return "\n".join(lines) + ("\n" if lines else "")
