"""Every span attribute, event and metric name runtrace reads or writes.

GenAI names come from the OpenTelemetry semantic-conventions package (v1.41
GenAI conventions, the ones current instrumentations emit) so a rename upstream
is one import away; runtrace's own names live under ``runtrace.``. No other
module spells an attribute name as a string literal.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _g
from opentelemetry.semconv._incubating.attributes import server_attributes as _srv
from opentelemetry.semconv.attributes import error_attributes as _err
from opentelemetry.semconv.attributes import exception_attributes as _exc
from opentelemetry.semconv.attributes import service_attributes as _svc

# --- GenAI semantic conventions -------------------------------------------------
GEN_AI_OPERATION_NAME: Final = _g.GEN_AI_OPERATION_NAME
GEN_AI_PROVIDER_NAME: Final = _g.GEN_AI_PROVIDER_NAME
GEN_AI_SYSTEM: Final = _g.GEN_AI_SYSTEM  # deprecated; read from other SDKs only
GEN_AI_REQUEST_MODEL: Final = _g.GEN_AI_REQUEST_MODEL
GEN_AI_REQUEST_MAX_TOKENS: Final = _g.GEN_AI_REQUEST_MAX_TOKENS
GEN_AI_REQUEST_TEMPERATURE: Final = _g.GEN_AI_REQUEST_TEMPERATURE
GEN_AI_REQUEST_TOP_P: Final = _g.GEN_AI_REQUEST_TOP_P
GEN_AI_REQUEST_TOP_K: Final = _g.GEN_AI_REQUEST_TOP_K
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = _g.GEN_AI_REQUEST_FREQUENCY_PENALTY
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = _g.GEN_AI_REQUEST_PRESENCE_PENALTY
GEN_AI_REQUEST_STOP_SEQUENCES: Final = _g.GEN_AI_REQUEST_STOP_SEQUENCES
GEN_AI_REQUEST_SEED: Final = _g.GEN_AI_REQUEST_SEED
GEN_AI_REQUEST_CHOICE_COUNT: Final = _g.GEN_AI_REQUEST_CHOICE_COUNT
GEN_AI_REQUEST_STREAM: Final = _g.GEN_AI_REQUEST_STREAM
GEN_AI_REQUEST_ENCODING_FORMATS: Final = _g.GEN_AI_REQUEST_ENCODING_FORMATS
GEN_AI_OUTPUT_TYPE: Final = _g.GEN_AI_OUTPUT_TYPE
GEN_AI_RESPONSE_MODEL: Final = _g.GEN_AI_RESPONSE_MODEL
GEN_AI_RESPONSE_ID: Final = _g.GEN_AI_RESPONSE_ID
GEN_AI_RESPONSE_FINISH_REASONS: Final = _g.GEN_AI_RESPONSE_FINISH_REASONS
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = _g.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
GEN_AI_USAGE_INPUT_TOKENS: Final = _g.GEN_AI_USAGE_INPUT_TOKENS
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _g.GEN_AI_USAGE_OUTPUT_TOKENS
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = _g.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = _g.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS
# Renamed on semantic-conventions-genai main (#440); read both, write the released one.
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = _g.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS
# Deprecated spellings other SDKs still send; ingest maps them.
GEN_AI_USAGE_PROMPT_TOKENS: Final = _g.GEN_AI_USAGE_PROMPT_TOKENS
GEN_AI_USAGE_COMPLETION_TOKENS: Final = _g.GEN_AI_USAGE_COMPLETION_TOKENS
GEN_AI_OPENAI_RESPONSE_SERVICE_TIER: Final = _g.GEN_AI_OPENAI_RESPONSE_SERVICE_TIER
GEN_AI_OPENAI_REQUEST_SERVICE_TIER: Final = _g.GEN_AI_OPENAI_REQUEST_SERVICE_TIER
GEN_AI_CONVERSATION_ID: Final = _g.GEN_AI_CONVERSATION_ID
GEN_AI_INPUT_MESSAGES: Final = _g.GEN_AI_INPUT_MESSAGES
GEN_AI_OUTPUT_MESSAGES: Final = _g.GEN_AI_OUTPUT_MESSAGES
GEN_AI_SYSTEM_INSTRUCTIONS: Final = _g.GEN_AI_SYSTEM_INSTRUCTIONS
GEN_AI_TOOL_NAME: Final = _g.GEN_AI_TOOL_NAME
GEN_AI_TOOL_CALL_ID: Final = _g.GEN_AI_TOOL_CALL_ID
GEN_AI_TOOL_TYPE: Final = _g.GEN_AI_TOOL_TYPE
GEN_AI_TOOL_DESCRIPTION: Final = _g.GEN_AI_TOOL_DESCRIPTION
GEN_AI_TOOL_CALL_ARGUMENTS: Final = _g.GEN_AI_TOOL_CALL_ARGUMENTS
GEN_AI_TOOL_CALL_RESULT: Final = _g.GEN_AI_TOOL_CALL_RESULT
GEN_AI_TOOL_DEFINITIONS: Final = _g.GEN_AI_TOOL_DEFINITIONS
GEN_AI_TOKEN_TYPE: Final = _g.GEN_AI_TOKEN_TYPE
SERVER_ADDRESS: Final = _srv.SERVER_ADDRESS
SERVER_PORT: Final = _srv.SERVER_PORT
ERROR_TYPE: Final = _err.ERROR_TYPE
# The span event the SDK's record_exception writes; runtrace writes it itself when content capture
# is off, without the message (see runtrace._errors).
EVENT_EXCEPTION: Final = "exception"
EXCEPTION_TYPE: Final = _exc.EXCEPTION_TYPE
EXCEPTION_STACKTRACE: Final = _exc.EXCEPTION_STACKTRACE
EXCEPTION_ESCAPED: Final = _exc.EXCEPTION_ESCAPED
SERVICE_NAME: Final = _svc.SERVICE_NAME

# gen_ai.operation.name values
OP_CHAT: Final = "chat"
OP_TEXT_COMPLETION: Final = "text_completion"
OP_GENERATE_CONTENT: Final = "generate_content"
OP_EMBEDDINGS: Final = "embeddings"
OP_EXECUTE_TOOL: Final = "execute_tool"
OP_INVOKE_AGENT: Final = "invoke_agent"
LLM_OPERATIONS: Final = frozenset({OP_CHAT, OP_TEXT_COMPLETION, OP_GENERATE_CONTENT, OP_EMBEDDINGS})

PROVIDER_OPENAI: Final = "openai"
PROVIDER_ANTHROPIC: Final = "anthropic"
PROVIDER_GEMINI: Final = "gcp.gemini"  # the Gemini Developer API (google-genai)
PROVIDER_VERTEX_AI: Final = "gcp.vertex_ai"  # google-genai with vertexai=True
PROVIDER_BEDROCK: Final = "aws.bedrock"
PROVIDER_MISTRAL: Final = "mistral_ai"

# --- runtrace: runs ----------------------------------------------------------
RUN_ID: Final = "runtrace.run.id"
RUN_NAME: Final = "runtrace.run.name"
PROJECT: Final = "runtrace.project"
OWNER: Final = "runtrace.owner"
RUN_METADATA_PREFIX: Final = "runtrace.run.metadata."
RUN_OUTCOME: Final = "runtrace.run.outcome"
RUN_OUTCOME_BY: Final = "runtrace.run.outcome.by"
RUN_OUTCOME_REASON: Final = "runtrace.run.outcome.reason"
RUN_STOP_REASON: Final = "runtrace.run.stop_reason"
RUN_COST_USD: Final = "runtrace.run.cost.usd"
RUN_UNPRICED_CALLS: Final = "runtrace.run.unpriced_calls"
RUN_INPUT_TOKENS: Final = "runtrace.run.input_tokens"
RUN_OUTPUT_TOKENS: Final = "runtrace.run.output_tokens"
RUN_CACHED_INPUT_TOKENS: Final = "runtrace.run.cached_input_tokens"
RUN_REASONING_TOKENS: Final = "runtrace.run.reasoning_tokens"
RUN_LLM_CALLS: Final = "runtrace.run.llm_calls"
RUN_TOOL_CALLS: Final = "runtrace.run.tool_calls"
RUN_REPEATED_READS: Final = "runtrace.run.repeated_reads"
RUN_LOOP_DETECTED: Final = "runtrace.run.loop_detected"
# Budget limits, stamped on the run span at start.
BUDGET_MAX_COST_USD: Final = "runtrace.budget.max_cost_usd"
BUDGET_MAX_LLM_CALLS: Final = "runtrace.budget.max_llm_calls"
BUDGET_MAX_TOOL_CALLS: Final = "runtrace.budget.max_tool_calls"
BUDGET_MAX_SECONDS: Final = "runtrace.budget.max_seconds"
BUDGET_MAX_INPUT_TOKENS: Final = "runtrace.budget.max_input_tokens"
BUDGET_ON_EXCEED: Final = "runtrace.budget.on_exceed"
BUDGET_ALLOWED_TOOLS: Final = "runtrace.budget.allowed_tools"  # string array, sorted
# Marks what a span is to runtrace: "run", "outcome" (a late verdict); LLM and
# tool spans are recognised by gen_ai.operation.name.
SPAN_ROLE: Final = "runtrace.span.role"
ROLE_RUN: Final = "run"
ROLE_OUTCOME: Final = "outcome"
OUTCOME_SPAN_NAME: Final = "run.outcome"
BAGGAGE_RUN_ID: Final = RUN_ID  # the W3C baggage key that carries the run id
# Runs from outside runtrace (docs/architecture.md, "How spans become runs"): a span without runtrace.run.id belongs to its
# session's run (these keys, span attributes before resource attributes, in this order),
# else to its trace's run (run id = the 32-hex trace id, name = the root span's name).
SESSION_ID: Final = "session.id"  # Claude Code, Gemini CLI, OpenInference, ...
CONVERSATION_ID: Final = "conversation.id"  # Codex
SESSION_KEYS: Final = (SESSION_ID, CONVERSATION_ID, GEN_AI_CONVERSATION_ID)

# Outcomes (the `outcome` run field of `--format json`)
OUTCOME_ACCEPTED: Final = "accepted"
OUTCOME_REJECTED: Final = "rejected"
OUTCOME_ABANDONED: Final = "abandoned"
OUTCOME_ERROR: Final = "error"
OUTCOME_BUDGET_STOPPED: Final = "budget_stopped"
OUTCOME_UNFINISHED: Final = "unfinished"  # spans seen, no run span: the process died
OUTCOME_OPEN: Final = "open"  # the run ended without a verdict yet
OUTCOMES: Final = frozenset({
    OUTCOME_ACCEPTED, OUTCOME_REJECTED, OUTCOME_ABANDONED, OUTCOME_ERROR,
    OUTCOME_BUDGET_STOPPED, OUTCOME_UNFINISHED, OUTCOME_OPEN,
})
VERDICTS: Final = frozenset({OUTCOME_ACCEPTED, OUTCOME_REJECTED, OUTCOME_ABANDONED})

# --- runtrace: cost ----------------------------------------------------------
COST_USD: Final = "runtrace.cost.usd"
COST_INPUT_USD: Final = "runtrace.cost.input_usd"
COST_OUTPUT_USD: Final = "runtrace.cost.output_usd"
COST_SOURCE: Final = "runtrace.cost.source"  # genai-prices | override | unknown
COST_PRICE_TABLE: Final = "runtrace.cost.price_table"  # e.g. "genai-prices 0.2.3"
COST_UNPRICED_REASON: Final = "runtrace.cost.unpriced_reason"  # unknown_model | missing_usage | invalid_usage | local_model
COST_SERVICE_TIER: Final = "runtrace.cost.service_tier"  # the tier that was priced
COST_TIER_MATCHED: Final = "runtrace.cost.tier_matched"  # False: tier had no price, standard used
COST_PRICED_AT_INGEST: Final = "runtrace.cost.priced_at_ingest"
SOURCE_GENAI_PRICES: Final = "genai-prices"
SOURCE_OVERRIDE: Final = "override"
SOURCE_UNKNOWN: Final = "unknown"
UNPRICED_UNKNOWN_MODEL: Final = "unknown_model"
UNPRICED_MISSING_USAGE: Final = "missing_usage"

# --- runtrace: LLM call details ----------------------------------------------
USAGE_MISSING: Final = "runtrace.usage.missing"  # bool: the response carried no usage
REQUESTED_TOOL_NAMES: Final = "runtrace.tool_calls.names"  # tools the model asked for
REQUESTED_TOOL_CALL_IDS: Final = "runtrace.tool_calls.ids"
STREAM_ENDED_BY: Final = "runtrace.stream.ended_by"  # exhausted | closed | abandoned | error
CONTEXT_MESSAGES: Final = "runtrace.context.messages"  # messages sent in this request
CONTEXT_CHARS: Final = "runtrace.context.chars"  # characters of prompt content sent
CONTEXT_FINGERPRINT: Final = "runtrace.context.fingerprint"  # hash of the whole prompt
CONTEXT_NEW_MESSAGES: Final = "runtrace.context.new_messages"
CONTEXT_REINJECTED_MESSAGES: Final = "runtrace.context.reinjected_messages"
CONTEXT_REINJECTED_TOKENS: Final = "runtrace.context.reinjected_tokens"
CONTEXT_TOKEN_ESTIMATOR: Final = "runtrace.context.token_estimator"  # tiktoken | chars/4
CONTEXT_UNCACHED_INPUT_SHARE: Final = "runtrace.context.uncached_input_share"

# --- runtrace: tool calls ----------------------------------------------------
TOOL_ARGS_HASH: Final = "runtrace.tool.args_hash"
TOOL_RESULT_HASH: Final = "runtrace.tool.result_hash"
TOOL_REPEAT_COUNT: Final = "runtrace.tool.repeat_count"  # identical (name, args, result) so far, this one included
TOOL_REPEATED_READ: Final = "runtrace.tool.repeated_read"  # bool
TOOL_SOURCE: Final = "runtrace.tool.source"  # decorator | mcp
TOOL_RESULT_TOKENS: Final = "runtrace.tool.result_tokens"  # estimated tokens of the result
TOOL_REPEATED_READ_TOKENS: Final = "runtrace.tool.repeated_read_tokens"  # result tokens of a repeated read

# --- runtrace: detections (span events) --------------------------------------
LOOP_DETECTED: Final = "runtrace.loop.detected"  # bool on the span that tripped it
EVENT_LOOP: Final = "runtrace.loop"
EVENT_BUDGET: Final = "runtrace.budget.exceeded"
EVENT_REPEATED_READ: Final = "runtrace.repeated_read"
LOOP_KIND: Final = "runtrace.loop.kind"  # same_call | cycle | same_completion
LOOP_COUNT: Final = "runtrace.loop.count"
LOOP_DESCRIPTION: Final = "runtrace.loop.description"
BUDGET_LIMIT: Final = "runtrace.budget.limit"
BUDGET_LIMIT_VALUE: Final = "runtrace.budget.limit_value"
BUDGET_OBSERVED: Final = "runtrace.budget.observed"
BUDGET_PROJECTED: Final = "runtrace.budget.projected"  # what the refused call was projected to add
BUDGET_ACTION: Final = "runtrace.budget.action"
BUDGET_REASON: Final = "runtrace.budget.reason"  # the sentence naming a policy rule that was broken

# --- runtrace: policies (runtrace.policy) -------------------------------------
# Stop reasons (the run's stop_reason and Breach.limit) of the rules of a Policy and of
# Budget.allowed_tools. Caps read "<scope>_<window>_usd" / "<scope>_daily_runs".
STOP_PROJECT_DAILY_USD: Final = "project_daily_usd"
STOP_PROJECT_WEEKLY_USD: Final = "project_weekly_usd"
STOP_PROJECT_MONTHLY_USD: Final = "project_monthly_usd"
STOP_PROJECT_DAILY_RUNS: Final = "project_daily_runs"
STOP_OWNER_DAILY_USD: Final = "owner_daily_usd"
STOP_OWNER_WEEKLY_USD: Final = "owner_weekly_usd"
STOP_OWNER_MONTHLY_USD: Final = "owner_monthly_usd"
STOP_OWNER_DAILY_RUNS: Final = "owner_daily_runs"
STOP_TOOL_NOT_ALLOWED: Final = "tool_not_allowed"
STOP_MODEL_NOT_ALLOWED: Final = "model_not_allowed"
STOP_MODEL_TOO_DEAR: Final = "model_too_dear_for_small_call"
POLICY_STOP_REASONS: Final = frozenset({
    STOP_PROJECT_DAILY_USD, STOP_PROJECT_WEEKLY_USD, STOP_PROJECT_MONTHLY_USD, STOP_PROJECT_DAILY_RUNS,
    STOP_OWNER_DAILY_USD, STOP_OWNER_WEEKLY_USD, STOP_OWNER_MONTHLY_USD, STOP_OWNER_DAILY_RUNS,
    STOP_TOOL_NOT_ALLOWED, STOP_MODEL_NOT_ALLOWED, STOP_MODEL_TOO_DEAR,
})

# --- metrics -----------------------------------------------------------------
METRIC_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
METRIC_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
METRIC_COST: Final = "runtrace.cost"
METRIC_RUNS: Final = "runtrace.runs"
METRIC_BUDGET_STOPS: Final = "runtrace.budget.stops"
METRIC_LOOPS: Final = "runtrace.loops"
TOKEN_USAGE_BUCKETS: Final = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144,
                              1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12,
                           10.24, 20.48, 40.96, 81.92)

# --- environment -------------------------------------------------------------
ENV_STORE: Final = "RUNTRACE_STORE"
ENV_PRICES: Final = "RUNTRACE_PRICES"
ENV_POLICY: Final = "RUNTRACE_POLICY"  # a policy TOML file (runtrace.policy)
ENV_CAPTURE_CONTENT: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENV_SERVE_TOKEN: Final = "RUNTRACE_TOKEN"  # bearer token of `runtrace serve`

# --- pricing (appended) --------------------------------------------------------
# The newer spelling of gen_ai.openai.response.service_tier (semconv 1.37+); read both.
OPENAI_RESPONSE_SERVICE_TIER: Final = "openai.response.service_tier"
# runtrace.cost.unpriced_reason: token counts that contradict themselves
# (cache reads above the total input, negative counts); unpriced, never $0.
UNPRICED_INVALID_USAGE: Final = "invalid_usage"

# --- MCP (appended) ------------------------------------------------------------
TOOL_SOURCE_MCP: Final = "mcp"  # runtrace.tool.source of a tool called over MCP
# error.type of an MCP tool call whose result says isError (the value the MCP SDK's server spans use)
ERROR_TYPE_TOOL_ERROR: Final = "tool_error"

# --- LLM client instrumentation (instrumentation/openai.py, anthropic.py) -----
OPENAI_REQUEST_SERVICE_TIER: Final = "openai.request.service_tier"  # the tier asked for ("auto" omitted)
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"  # on LLM spans that failed with a status
# runtrace.cost.source of a request the provider refused with an error status
# (4xx/5xx): not billed, so $0 and priced, not "unknown".
SOURCE_NOT_BILLED: Final = "not_billed"
# Anthropic reports cache writes split by TTL; the total is gen_ai.usage.cache_creation.input_tokens.
USAGE_CACHE_WRITE_5M_TOKENS: Final = "runtrace.usage.cache_write_5m.input_tokens"
USAGE_CACHE_WRITE_1H_TOKENS: Final = "runtrace.usage.cache_write_1h.input_tokens"
# runtrace.stream.ended_by values
STREAM_ENDED_EXHAUSTED: Final = "exhausted"
STREAM_ENDED_CLOSED: Final = "closed"
STREAM_ENDED_ABANDONED: Final = "abandoned"
STREAM_ENDED_ERROR: Final = "error"

# --- ingest bounds (store/bounds.py, issue 9) ----------------------------------
# On a span stored with out-of-range numbers removed (in-process path): the
# attribute keys that were dropped, so the span shows why its figures are missing.
INGEST_DROPPED: Final = "runtrace.ingest.dropped"
# runtrace.cost.unpriced_reason when a cost (sent or priced at ingest) or a usage
# count was past the store's bounds: unpriced, never $0.
UNPRICED_OUT_OF_RANGE: Final = "out_of_range"

# --- other GenAI instrumentations in the same process (_processors.DuplicateMarker) ---
# The instrumentation scopes of runtrace's own LLM spans.
RUNTRACE_LLM_SCOPES: Final = frozenset({f"runtrace.instrumentation.{client}" for client in (
    "openai", "anthropic", "litellm", "gemini", "bedrock", "mistral")})
# runtrace's scopes whose spans are never an LLM request (runs, verdicts, tools): DuplicateMarker skips them.
RUNTRACE_NON_LLM_SCOPES: Final = frozenset({"runtrace", "runtrace.tools"})
# What marks another instrumentation's span as one LLM request: OpenLLMetry/traceloop
# (``llm.request.type``), OpenInference (``openinference.span.kind``), and the GenAI
# semconv ``gen_ai.operation.name`` (openai-v2, OpenLIT, pydantic-ai, Logfire).
LLM_REQUEST_TYPE: Final = "llm.request.type"
LLM_REQUEST_TYPES: Final = frozenset({"chat", "completion", "embedding"})
OPENINFERENCE_LLM_KINDS: Final = frozenset({"LLM", "EMBEDDING"})
# Scopes whose spans are LLM requests from their start, before any attribute is set:
# OpenLIT starts its span bare and names the operation only when the response is read.
FOREIGN_LLM_SCOPES: Final = frozenset({"openlit.instrumentation.openai", "openlit.instrumentation.anthropic"})
# Scopes of a client SDK tracing its own calls (the anthropic SDK's ``com.anthropic.sdk.python``):
# beside a wrapper instrumentation's span of the same call, the SDK's own span counts (store/siblings.py).
SDK_OWN_SCOPE_PREFIXES: Final = ("com.anthropic.sdk.",)
# Every scope runtrace names its own spans under ("runtrace", "runtrace.instrumentation.openai", ...).
RUNTRACE_SCOPE: Final = "runtrace"

# --- providers behind OpenAI-compatible endpoints (instrumentation/endpoints.py) ----------
# gen_ai.provider.name well-known values (GenAI semconv) for the providers runtrace
# recognises from a client's class or base_url; a provider the semconv does not
# name is called by its genai-prices id (openrouter, together, fireworks, moonshotai, ...).
PROVIDER_AZURE_OPENAI: Final = "azure.ai.openai"
PROVIDER_DEEPSEEK: Final = "deepseek"
PROVIDER_GROQ: Final = "groq"
PROVIDER_X_AI: Final = "x_ai"
PROVIDER_MISTRAL_AI: Final = "mistral_ai"
PROVIDER_PERPLEXITY: Final = "perplexity"
PROVIDER_COHERE: Final = "cohere"
PROVIDER_AWS_BEDROCK: Final = "aws.bedrock"
PROVIDER_GCP_GEN_AI: Final = "gcp.gen_ai"
PROVIDER_GCP_VERTEX_AI: Final = "gcp.vertex_ai"
PROVIDER_GCP_GEMINI: Final = "gcp.gemini"  # the Gemini Developer API (Gemini CLI, google-genai)
PROVIDER_LITELLM: Final = "litellm"  # LiteLLM's own name, when it does not say which backend served
# A model served on this machine or the local network (Ollama, vLLM, LM Studio, llama.cpp):
# not a semconv value; unpriced unless a price override names it.
PROVIDER_LOCAL: Final = "local"
# gen_ai.provider.name -> genai-prices provider id, where the two differ (pricing.py).
GENAI_PRICES_PROVIDER_IDS: Final = {
    PROVIDER_AZURE_OPENAI: "azure",
    "azure.ai.inference": "azure",
    "az.ai.inference": "azure",
    PROVIDER_X_AI: "x-ai",
    PROVIDER_MISTRAL_AI: "mistral",
    PROVIDER_AWS_BEDROCK: "aws",
    PROVIDER_GCP_GEN_AI: "google",
    PROVIDER_GCP_VERTEX_AI: "google",
    PROVIDER_GCP_GEMINI: "google",
}
# genai-prices provider id -> the gen_ai.provider.name runtrace records for it.
PROVIDER_OF_GENAI_PRICES_ID: Final = {
    "azure": PROVIDER_AZURE_OPENAI,
    "x-ai": PROVIDER_X_AI,
    "mistral": PROVIDER_MISTRAL_AI,
    "aws": PROVIDER_AWS_BEDROCK,
    "google": PROVIDER_GCP_GEN_AI,
    "openai-decisions": PROVIDER_OPENAI,
}
# runtrace.cost.unpriced_reason of a call to a local model no override prices.
UNPRICED_LOCAL_MODEL: Final = "local_model"

# --- attribute dialects read at ingest (store/normalise.py, issue 12) ----------
# Which dialect the normaliser read a span's usage/model/provider from (only on
# spans it added canonical attributes to): genai | openllmetry | openinference |
# openlit | logfire | vercel.
SOURCE_DIALECT: Final = "runtrace.source.dialect"
DIALECT_GENAI: Final = "genai"
DIALECT_OPENLLMETRY: Final = "openllmetry"
DIALECT_OPENINFERENCE: Final = "openinference"
DIALECT_OPENLIT: Final = "openlit"
DIALECT_LOGFIRE: Final = "logfire"
DIALECT_VERCEL: Final = "vercel"
# When a dialect's own gen_ai.usage.input_tokens means something else (OpenLIT's
# Anthropic spans: the uncached part only), the canonical total replaces it and
# the value as sent is kept here.
SOURCE_INPUT_TOKENS: Final = "runtrace.source.input_tokens"
# A span that describes a call another span already counts: a foreign GenAI span
# started inside runtrace's own LLM span (the value: runtrace's span id), or a coding
# agent's own trace span for a call its log events count. Stored, never counted.
DUPLICATE_OF: Final = "runtrace.duplicate_of"
# Its value on a foreign span of a call whose runtrace span had not started when the
# foreign span ended (anthropic's stream managers send at __enter__; _pending.py).
DUPLICATE_OF_UNSTARTED: Final = "runtrace.call_not_started"
# OpenLLMetry (opentelemetry-semantic-conventions-ai 0.5.x SpanAttributes).
OPENLLMETRY_REQUEST_TYPE: Final = "llm.request.type"  # chat | completion | embedding | rerank
OPENLLMETRY_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read_input_tokens"
OPENLLMETRY_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation_input_tokens"
OPENLLMETRY_REASONING_TOKENS: Final = "llm.usage.reasoning_tokens"
OPENLLMETRY_GEN_AI_REASONING_TOKENS: Final = "gen_ai.usage.reasoning_tokens"
OPENLLMETRY_TOTAL_TOKENS: Final = "llm.usage.total_tokens"
# OpenInference (openinference-semantic-conventions 0.1.x SpanAttributes).
OPENINFERENCE_SPAN_KIND: Final = "openinference.span.kind"  # LLM | EMBEDDING | CHAIN | AGENT | TOOL ...
OPENINFERENCE_MODEL_NAME: Final = "llm.model_name"
OPENINFERENCE_PROVIDER: Final = "llm.provider"
OPENINFERENCE_SYSTEM: Final = "llm.system"
OPENINFERENCE_PROMPT_TOKENS: Final = "llm.token_count.prompt"
OPENINFERENCE_COMPLETION_TOKENS: Final = "llm.token_count.completion"
OPENINFERENCE_CACHE_READ_TOKENS: Final = "llm.token_count.prompt_details.cache_read"
OPENINFERENCE_CACHE_WRITE_TOKENS: Final = "llm.token_count.prompt_details.cache_write"
OPENINFERENCE_REASONING_TOKENS: Final = "llm.token_count.completion_details.reasoning"
# Vercel AI SDK (ai.* telemetry; v4 prompt/completion and v5 input/output spellings).
VERCEL_MODEL_ID: Final = "ai.model.id"
VERCEL_MODEL_PROVIDER: Final = "ai.model.provider"  # e.g. "openai.chat", "anthropic.messages"
VERCEL_RESPONSE_MODEL: Final = "ai.response.model"
VERCEL_PROMPT_TOKENS: Final = "ai.usage.promptTokens"
VERCEL_COMPLETION_TOKENS: Final = "ai.usage.completionTokens"
VERCEL_INPUT_TOKENS: Final = "ai.usage.inputTokens"
VERCEL_OUTPUT_TOKENS: Final = "ai.usage.outputTokens"
VERCEL_CACHED_INPUT_TOKENS: Final = "ai.usage.cachedInputTokens"
VERCEL_REASONING_TOKENS: Final = "ai.usage.reasoningTokens"
VERCEL_EMBED_TOKENS: Final = "ai.usage.tokens"
VERCEL_OPERATION_ID: Final = "ai.operationId"  # e.g. "ai.generateText.doGenerate"
# Instrumentation scope names that identify a dialect (prefixes).
SCOPE_OPENLIT: Final = "openlit"  # openlit's tracer is get_tracer("openlit.otel.tracing")
SCOPE_LOGFIRE: Final = "logfire"  # logfire.openai, logfire.anthropic, ...
SCOPE_PYDANTIC_AI: Final = "pydantic-ai"

# --- coding agents (agents/) ---------------------------------------------------------------
# First what runtrace writes on the records it makes from an agent's events (agents/_build.py),
# then the agents' own names as each sends them, by subject, the three agents side by side
# (agents/claude.py, agents/codex.py, agents/gemini.py).

# runtrace's: the records and their run.
AGENT_EVENT: Final = "runtrace.agent.event"  # the agent event a record was made from
AGENT_PROMPT_SPAN: Final = "user_prompt"  # the span name of a coding agent's prompt record (the first names the run)
AGENT_COST_USD: Final = "runtrace.agent.cost_usd"  # the agent's own cost figure for a call (kept, not summed)
EVENT_NAME: Final = "event.name"  # an OTLP log record's event name, as an attribute

# runtrace's: tool calls.
TOOL_DURATION_MS: Final = "runtrace.tool.duration_ms"
TOOL_REFUSED: Final = "runtrace.tool.refused"  # bool: the agent's sandbox/user refused the tool call
TOOL_READ: Final = "runtrace.tool.read"  # bool: the call only reads (candidate for a repeated read)
# On a tool record: the agent sent no tool input (Claude Code without OTEL_LOG_TOOL_DETAILS=1),
# so repeated reads and loops cannot be detected for it.
TOOL_DETAILS_MISSING: Final = "runtrace.tool.details_missing"
# On an agent's read record: the estimated tokens of what it read, so a store-side
# recount over the whole run (store/rereads.py) can size a repeat found across requests.
TOOL_READ_TOKENS: Final = "runtrace.tool.read_tokens"
# On an agent's file read or write record: a hash of the file path, so the run-wide
# recount (store/rereads.py) treats a read after a write to the same file as a new read.
TOOL_PATH_HASH: Final = "runtrace.tool.path_hash"

# Who sent it: service.name, scope, and the session. The run id is Claude Code's and
# Gemini's SESSION_ID ("session.id"), Codex's conversation.id.
CLAUDE_SERVICE_NAMES: Final = frozenset({"claude-code"})
CODEX_SERVICE_NAMES: Final = frozenset({"codex_exec", "codex_cli_rs", "codex_vscode"})  # the originator
GEMINI_SERVICE_NAMES: Final = frozenset({"gemini-cli"})
CLAUDE_TRACING_SCOPE: Final = "com.anthropic.claude_code.tracing"
GEMINI_SCOPE: Final = "gemini-cli"
CODEX_CONVERSATION_ID: Final = "conversation.id"
CODEX_THREAD_ID: Final = "thread_id"  # == conversation.id, on Codex spans that lack it
# Where in the session: one id per user prompt; Claude numbers its events per process.
CLAUDE_PROMPT_ID: Final = "prompt.id"
GEMINI_PROMPT_ID: Final = "prompt_id"
CLAUDE_EVENT_SEQUENCE: Final = "event.sequence"

# The events runtrace reads (event.name); every other event is accepted and dropped.
CLAUDE_EV_USER_PROMPT: Final = "user_prompt"
CLAUDE_EV_API_REQUEST: Final = "api_request"
CLAUDE_EV_API_ERROR: Final = "api_error"
CLAUDE_EV_TOOL_RESULT: Final = "tool_result"
CODEX_EV_USER_PROMPT: Final = "codex.user_prompt"
CODEX_EV_SSE_EVENT: Final = "codex.sse_event"  # a model call: the one of kind response.completed
CODEX_EV_API_REQUEST: Final = "codex.api_request"
CODEX_EV_TOOL_RESULT: Final = "codex.tool_result"
CODEX_EV_SANDBOX_OUTCOME: Final = "codex.sandbox_outcome"
GEMINI_EV_USER_PROMPT: Final = "gemini_cli.user_prompt"
GEMINI_EV_API_REQUEST: Final = "gemini_cli.api_request"
GEMINI_EV_API_RESPONSE: Final = "gemini_cli.api_response"
GEMINI_EV_API_ERROR: Final = "gemini_cli.api_error"
GEMINI_EV_TOOL_CALL: Final = "gemini_cli.tool_call"
# The user prompt's text (redacted unless the agent's prompt flag is on).
CLAUDE_PROMPT: Final = "prompt"
CODEX_PROMPT: Final = "prompt"
GEMINI_PROMPT: Final = "prompt"

# A model call: its model, then its tokens, whose meaning differs by agent.
CLAUDE_MODEL: Final = "model"
CODEX_MODEL: Final = "model"
GEMINI_MODEL: Final = "model"  # on api_response: the response model
CODEX_EVENT_KIND: Final = "event.kind"
CODEX_KIND_COMPLETED: Final = "response.completed"
CLAUDE_INPUT_TOKENS: Final = "input_tokens"  # uncached only
CODEX_INPUT_TOKENS: Final = "input_token_count"  # includes cached
GEMINI_INPUT_TOKENS: Final = "input_token_count"  # includes cached
CLAUDE_CACHE_READ_TOKENS: Final = "cache_read_tokens"
CODEX_CACHED_TOKENS: Final = "cached_token_count"
GEMINI_CACHED_TOKENS: Final = "cached_content_token_count"
CLAUDE_CACHE_CREATION_TOKENS: Final = "cache_creation_tokens"
CODEX_CACHE_WRITE_TOKENS: Final = "cache_write_token_count"
CLAUDE_OUTPUT_TOKENS: Final = "output_tokens"
CODEX_OUTPUT_TOKENS: Final = "output_token_count"  # includes reasoning
GEMINI_OUTPUT_TOKENS: Final = "output_token_count"  # candidates only
CODEX_REASONING_TOKENS: Final = "reasoning_token_count"
GEMINI_THOUGHTS_TOKENS: Final = "thoughts_token_count"  # beside the candidates
GEMINI_FINISH_REASONS: Final = "finish_reasons"
CLAUDE_COST_USD: Final = "cost_usd"  # only Claude Code prices its calls
# How long a model or tool call took (all three say duration_ms).
CLAUDE_DURATION_MS: Final = "duration_ms"
CODEX_DURATION_MS: Final = "duration_ms"
GEMINI_DURATION_MS: Final = "duration_ms"
# A model call that failed.
CLAUDE_ERROR: Final = "error"
CLAUDE_STATUS_CODE: Final = "status_code"
CLAUDE_ATTEMPT: Final = "attempt"
CODEX_ERROR_MESSAGE: Final = "error.message"
GEMINI_ERROR: Final = "error"  # also a failed tool call's
GEMINI_ERROR_TYPE: Final = "error_type"
GEMINI_STATUS_CODE: Final = "status_code"

# A tool call: its name and id, what it was given, what came of it.
CLAUDE_TOOL_NAME: Final = "tool_name"
CODEX_TOOL_NAME: Final = "tool_name"
GEMINI_FUNCTION_NAME: Final = "function_name"
CLAUDE_TOOL_USE_ID: Final = "tool_use_id"
CODEX_CALL_ID: Final = "call_id"
CLAUDE_TOOL_INPUT: Final = "tool_input"  # JSON, only with OTEL_LOG_TOOL_DETAILS=1
CODEX_ARGUMENTS: Final = "arguments"  # JSON, always sent
GEMINI_FUNCTION_ARGS: Final = "function_args"  # JSON, only with telemetry.logPrompts
CLAUDE_SUCCESS: Final = "success"
CODEX_SUCCESS: Final = "success"
GEMINI_SUCCESS: Final = "success"
CLAUDE_TOOL_RESULT_SIZE: Final = "tool_result_size_bytes"
CODEX_OUTPUT: Final = "output"  # the full output text
GEMINI_CONTENT_LENGTH: Final = "content_length"
# Which MCP server a tool call went to (Claude's only with OTEL_LOG_TOOL_DETAILS=1).
CLAUDE_TOOL_PARAMETERS: Final = "tool_parameters"  # JSON: mcp_server_name, mcp_tool_name; Bash's full_command
CLAUDE_MCP_SERVER_NAME: Final = "mcp_server_name"  # in tool_parameters
CLAUDE_MCP_TOOL_NAME: Final = "mcp_tool_name"  # in tool_parameters
CODEX_MCP_SERVER: Final = "mcp_server"  # "" for a built-in tool
GEMINI_TOOL_TYPE: Final = "tool_type"  # native | mcp
GEMINI_TOOL_TYPE_MCP: Final = "mcp"
GEMINI_MCP_SERVER_NAME: Final = "mcp_server_name"
# A refused tool call: Codex's sandbox, Gemini's decision, Claude Code's (a span's) decision.
CODEX_OUTCOME: Final = "outcome"
CODEX_OUTCOME_DENIED: Final = "denied"
GEMINI_DECISION: Final = "decision"
GEMINI_DECISION_REJECT: Final = "reject"
CLAUDE_DECISION: Final = "decision"
CLAUDE_DECISION_REJECT: Final = "reject"
# What the claude_code.tool span says the call acted on (only with OTEL_LOG_TOOL_DETAILS=1).
CLAUDE_SPAN_FILE_PATH: Final = "file_path"
CLAUDE_SPAN_FULL_COMMAND: Final = "full_command"

# The agents' own spans, which describe calls their events count already (kept, never counted).
CLAUDE_SPAN_LLM_REQUEST: Final = "claude_code.llm_request"
CLAUDE_SPAN_TOOL: Final = "claude_code.tool"
CLAUDE_SPAN_TOOL_EXECUTION: Final = "claude_code.tool.execution"
CLAUDE_SPAN_BLOCKED_ON_USER: Final = "claude_code.tool.blocked_on_user"  # the one that carries a refusal
GEMINI_SPAN_LLM_CALL: Final = "llm_call"
GEMINI_SPAN_TOOL_CALL: Final = "tool_call"
