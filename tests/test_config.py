"""Settings from the environment."""

import pytest

from orders.config import Settings
from orders.environ import ConfigError
from orders.production import require_safe_start


def test_embedded_defaults(tmp_path):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/shop.db"
    assert settings.redis_url is None and not settings.uses_redis
    assert (settings.orders_concurrency, settings.payments_concurrency) == (500, 500)
    assert settings.notifications_concurrency == 500  # jobs in flight per consumer
    assert settings.consumer_worker_class == "thread"  # SQLite: a few threads, not 500
    assert (
        settings.consumer_workers("payments") == 4 and settings.consumer_workers("scheduler") == 1
    )
    assert settings.max_attempts == 5 and settings.retry_delay_seconds == 2.0
    assert settings.job_cleanup_interval_ms == 3_600_000


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_both_postgres_schemes_are_accepted(scheme):
    settings = Settings.from_env({"DATABASE_URL": f"{scheme}://u:p@db:5432/shop"})
    assert settings.sqlalchemy_url == "postgresql+psycopg://u:p@db:5432/shop"


def test_seed_redis_variables_build_a_url():
    env = {"REDIS_HOST": "cache", "REDIS_PORT": "6380", "REDIS_PASSWORD": "p@ss", "REDIS_DB": "1"}
    assert Settings.from_env(env).redis_url == "redis://:p%40ss@cache:6380/1"


def test_redis_url_wins_over_parts():
    env = {"REDIS_URL": "redis://a:6379/0", "REDIS_HOST": "b"}
    assert Settings.from_env(env).redis_url == "redis://a:6379/0"


def test_max_job_concurrency_sets_every_queue_and_per_queue_wins():
    settings = Settings.from_env({"MAX_JOB_CONCURRENCY": "7", "PAYMENTS_CONCURRENCY": "9"})
    assert settings.orders_concurrency == 7
    assert settings.notifications_concurrency == 7
    assert settings.payments_concurrency == 9


def test_consumers_run_jobs_in_flight_as_greenlets_on_postgres_and_redis():
    env = {"DATABASE_URL": "postgresql://db/shop", "REDIS_URL": "redis://r:6379/0"}
    settings = Settings.from_env(env)
    assert settings.consumer_worker_class == "greenlet"
    assert settings.consumer_workers("orders") == 500  # not capped: a greenlet per job
    sized = Settings.from_env({**env, "MAX_JOB_CONCURRENCY": "500", "WORKER_DB_POOL": "2"})
    assert (sized.consumer_workers("notifications"), sized.worker_db_pool) == (500, 2)
    # either driver alone blocks (SQLite) or polls (SqliteHuey): threads
    assert Settings.from_env({"DATABASE_URL": env["DATABASE_URL"]}).consumer_worker_class == (
        "thread"
    )
    assert Settings.from_env({"REDIS_URL": env["REDIS_URL"]}).consumer_worker_class == "thread"
    forced = Settings.from_env({**env, "WORKER_CLASS": "thread", "ORDERS_CONCURRENCY": "3"})
    assert (forced.consumer_worker_class, forced.consumer_workers("orders")) == ("thread", 3)
    for bad in ({"WORKER_CLASS": "process"}, {"WORKER_DB_POOL": "0"}, {"MAX_JOB_CONCURRENCY": "0"}):
        with pytest.raises(ConfigError):
            Settings.from_env(bad)


def test_latency_ranges_parse():
    env = {"SIM_GATEWAY_LATENCY_MS": "3000-5000", "SIM_STEP_LATENCY_MS": "0"}
    settings = Settings.from_env(env)
    assert settings.sim_gateway_latency_ms == (3000, 5000)
    assert settings.sim_step_latency_ms == (0, 0)


@pytest.mark.parametrize(
    "env",
    [
        {"SIM_GATEWAY_LATENCY_MS": "5-3"},
        {"SIM_STEP_LATENCY_MS": "fast"},
        {"LEASE_SECONDS": "soon"},
        {"OVERLOAD_POLICY": "panic"},
        {"MAX_ATTEMPTS": "0"},
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    name = next(iter(env))
    assert name in str(info.value) or name.lower() in str(info.value).lower()


STRONG = {"SECRET_KEY": "k" * 32, "GATEWAY_URL": "https://gateway.example"}


def test_unset_shop_env_means_production():
    assert Settings.from_env({}).is_production
    assert Settings.from_env({"SHOP_ENV": ""}).is_production
    assert not Settings.from_env({"SHOP_ENV": "development"}).is_production
    with pytest.raises(ConfigError, match="SHOP_ENV"):
        Settings.from_env({"SHOP_ENV": "staging"})


def test_production_with_strong_settings_starts():
    settings = Settings.from_env(STRONG)
    require_safe_start(settings)
    assert settings.is_production and settings.ops_password is None  # no bootstrap admin


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SECRET_KEY": None}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": "dev-secret-key-change-me"}, "SECRET_KEY is a published default"),
        ({"SECRET_KEY": "s3cret"}, "SECRET_KEY is shorter than 32"),
        ({"SECRET_KEY": "k" * 31}, "SECRET_KEY is shorter than 32"),
        ({"OPS_PASSWORD": ""}, "OPS_PASSWORD is empty"),
        ({"OPS_PASSWORD": "short-pass1"}, "OPS_PASSWORD is shorter than 12"),
        ({"OPS_PASSWORD": "ops-dev-password"}, "OPS_PASSWORD is a published default"),
        ({"OPS_PASSWORD": "change-me-too"}, "OPS_PASSWORD is"),
        ({"GATEWAY_URL": None}, "GATEWAY_URL is not set"),
        ({"GATEWAY_URL": None, "SHOP_ALLOW_SIMULATED_GATEWAY": "yes"}, "GATEWAY_URL is not set"),
    ],
)
def test_production_refuses_to_start_and_names_the_variable(env, variable):
    merged = {k: v for k, v in {**STRONG, **env}.items() if v is not None}
    for environment in ({}, {"SHOP_ENV": "production"}):
        settings = Settings.from_env({**merged, **environment})
        with pytest.raises(ConfigError, match=variable):
            require_safe_start(settings)


def test_production_allows_what_it_is_told_to():
    require_safe_start(Settings.from_env({**STRONG, "OPS_PASSWORD": "a-long-enough-pw"}))
    simulated = {"SECRET_KEY": "k" * 32, "SHOP_ALLOW_SIMULATED_GATEWAY": "1"}
    require_safe_start(Settings.from_env(simulated))


def test_development_keeps_the_laptop_defaults():
    settings = Settings.from_env({"SHOP_ENV": "development"})
    require_safe_start(settings)
    assert settings.secret_key == "dev-secret-key-change-me"
    assert (settings.ops_username, settings.ops_password) == ("ops", "ops-dev-password")


def test_security_settings_from_env():
    settings = Settings.from_env(
        {
            "TRUSTED_PROXY_HOPS": "2",
            "OPS_SESSION_IDLE_MINUTES": "10",
            "OPS_SESSION_MAX_HOURS": "4",
            "LOGIN_ATTEMPTS_PER_ADDRESS": "3",
            "LOGIN_ATTEMPTS_PER_ACCOUNT": "7",
            "LOGIN_WINDOW_SECONDS": "60",
        }
    )
    assert (settings.trusted_proxy_hops, settings.ops_session_idle_minutes) == (2, 10)
    assert settings.ops_session_max_hours == 4
    assert (settings.login_attempts_per_address, settings.login_attempts_per_account) == (3, 7)
    assert settings.login_window_seconds == 60
    defaults = Settings.from_env({})
    assert (defaults.trusted_proxy_hops, defaults.ops_session_idle_minutes) == (0, 30)
    assert (defaults.ops_session_max_hours, defaults.login_window_seconds) == (12, 300)
    with pytest.raises(ConfigError, match="TRUSTED_PROXY_HOPS"):
        Settings.from_env({"TRUSTED_PROXY_HOPS": "-1"})


def test_ops_settings_parse_with_defaults():
    assert (Settings.from_env({}).heartbeat_seconds, Settings.from_env({}).keep_failed_jobs) == (
        5,
        100,
    )
    env = {
        "HEARTBEAT_SECONDS": "2",
        "HEALTH_MAX_WAIT_SECONDS": "60",
        "KEEP_COMPLETED_JOBS": "3",
        "KEEP_FAILED_JOBS": "4",
    }
    settings = Settings.from_env(env)
    assert settings.heartbeat_seconds == 2 and settings.health_max_wait_seconds == 60
    assert (settings.keep_completed_jobs, settings.keep_failed_jobs) == (3, 4)


def test_redis_sentinels_build_a_sentinel_url():
    env = {
        "REDIS_SENTINELS": "s1:26379, s2:26380",
        "REDIS_SENTINEL_MASTER": "shop",
        "REDIS_PASSWORD": "p@ss",
        "REDIS_SENTINEL_PASSWORD": "sp",
        "REDIS_URL": "redis://ignored:6379/0",
    }
    settings = Settings.from_env(env)
    assert (
        settings.redis_url
        == "redis+sentinel://:p%40ss@s1:26379,s2:26380/shop/0?sentinel_password=sp"
    )
    assert settings.uses_redis


def test_redis_sentinels_must_be_host_port():
    with pytest.raises(ConfigError, match="REDIS_SENTINELS"):
        Settings.from_env({"REDIS_SENTINELS": "s1"})


def test_autoscale_settings():
    settings = Settings.from_env(
        {
            "AUTOSCALE_MIN": "2",
            "AUTOSCALE_MAX": "6",
            "AUTOSCALE_UP_DEPTH": "50",
            "AUTOSCALE_DOWN_DEPTH": "5",
            "AUTOSCALE_INTERVAL_SECONDS": "2.5",
        }
    )
    assert (settings.autoscale_min, settings.autoscale_max) == (2, 6)
    assert (settings.autoscale_up_depth, settings.autoscale_down_depth) == (50, 5)
    assert settings.autoscale_interval_seconds == 2.5
    defaults = Settings.from_env({})
    assert (defaults.autoscale_up_depth, defaults.autoscale_down_depth) == (100, 10)
    with pytest.raises(ConfigError, match="AUTOSCALE_MIN"):
        Settings.from_env({"AUTOSCALE_MIN": "5", "AUTOSCALE_MAX": "2"})
    with pytest.raises(ConfigError, match="AUTOSCALE_DOWN_DEPTH"):
        Settings.from_env({"AUTOSCALE_UP_DEPTH": "5", "AUTOSCALE_DOWN_DEPTH": "5"})


def test_per_step_latencies_fall_back_and_scale_by_one_time_factor():
    env = {
        "SIM_STEP_LATENCY_MS": "100-200",
        "SIM_GATEWAY_LATENCY_MS": "3000-5000",
        "SIM_ORDER_LATENCY_MS": "1000-2000",
        "SIM_TIME_FACTOR": "0.1",
    }
    settings = Settings.from_env(env)
    assert settings.step_latency_ms("order") == pytest.approx((100, 200))
    assert settings.step_latency_ms("gateway") == pytest.approx((300, 500))
    assert settings.step_latency_ms("email") == pytest.approx((10, 20))  # the shared range
    assert settings.step_latency_ms() == pytest.approx((10, 20))
    assert Settings.from_env({}).step_latency_ms("inventory") == (100, 300)


def test_negative_time_factor_is_refused():
    with pytest.raises(ConfigError):
        Settings.from_env({"SIM_TIME_FACTOR": "-1"})


def test_database_pool_is_sized_from_the_environment():
    from orders.db import engine_options

    default = Settings.from_env({"DATABASE_URL": "postgresql://db/shop"})
    assert (engine_options(default)["pool_size"], engine_options(default)["max_overflow"]) == (
        8,
        0,
    )
    consumer = engine_options(default, worker=True)  # WORKER_DB_POOL: kept, no burst
    assert (consumer["pool_size"], consumer["max_overflow"]) == (2, 0)
    sized = Settings.from_env(
        {"DATABASE_URL": "postgresql://db/shop", "DB_POOL_SIZE": "2", "DB_MAX_OVERFLOW": "3"}
    )
    assert (engine_options(sized)["pool_size"], engine_options(sized)["max_overflow"]) == (2, 3)


def test_stream_and_cart_settings(tmp_path):
    defaults = Settings.from_env({"DATA_DIR": str(tmp_path)})
    assert (defaults.sse_heartbeat_seconds, defaults.sse_poll_seconds) == (15.0, 1.0)
    assert defaults.cart_abandon_minutes == 60 and defaults.sse_db_pool == 4
    env = {"SSE_HEARTBEAT_SECONDS": "0.5", "SSE_POLL_SECONDS": "0.2", "CART_ABANDON_MINUTES": "5"}
    settings = Settings.from_env({**env, "SSE_DB_POOL": "2"})
    assert settings.sse_db_pool == 2
    assert (settings.sse_heartbeat_seconds, settings.sse_poll_seconds) == (0.5, 0.2)
    assert settings.cart_abandon_minutes == 5
    with pytest.raises(ConfigError):
        Settings.from_env({"SSE_HEARTBEAT_SECONDS": "30"})


def test_resilience_settings_from_env():
    from orders.config import Settings

    settings = Settings.from_env(
        {
            "OVERLOAD_QUEUE_DEPTH": "250",
            "GATEWAY_TIMEOUT_SECONDS": "4.5",
            "BREAKER_FAIL_MAX": "7",
            "BREAKER_RESET_SECONDS": "12",
            "LEASE_SECONDS": "30",
        }
    )
    assert settings.overload_queue_depth == 250
    assert settings.breaker_fail_max == 7 and settings.breaker_reset_seconds == 12.0
    assert settings.gateway_call_timeout == 4.5
    short_lease = Settings.from_env({"LEASE_SECONDS": "4", "GATEWAY_TIMEOUT_SECONDS": "10"})
    assert short_lease.gateway_call_timeout == 2.0  # a charge never outlives its lease


def test_payments_rate_limit_from_env():
    from orders.config import Settings

    settings = Settings.from_env({"PAYMENTS_RATE_LIMIT": "50", "PAYMENTS_RATE_SECONDS": "10"})
    assert (settings.payments_rate_limit, settings.payments_rate_seconds) == (50, 10)
    # the seed's 1000 per 60 s binds a real gateway; the simulated one has no such contract
    assert (
        Settings.from_env({"GATEWAY_URL": "https://pay.example"}).payments_rate_limit,
        Settings.from_env({}).payments_rate_seconds,
    ) == (1000, 60)


def test_redis_password_reaches_the_url():
    env = {"REDIS_URL": "redis://redis:6379/0", "REDIS_PASSWORD": "p@ss word"}
    assert Settings.from_env(env).redis_url == "redis://:p%40ss%20word@redis:6379/0"
    own = {"REDIS_URL": "redis://:mine@redis:6379/0", "REDIS_PASSWORD": "other"}
    assert Settings.from_env(own).redis_url == "redis://:mine@redis:6379/0"  # the URL's wins
    user = {"REDIS_URL": "rediss://shop@redis:6380/1", "REDIS_PASSWORD": "pw"}
    assert Settings.from_env(user).redis_url == "rediss://shop:pw@redis:6380/1"


def test_redis_password_reaches_the_sentinel_master():
    env = {"REDIS_SENTINELS": "s1:26379", "REDIS_URL": "redis://:from%2Furl@unused:6379/0"}
    assert Settings.from_env(env).redis_url == "redis+sentinel://:from%2Furl@s1:26379/mymaster/0"


@pytest.mark.parametrize("port", ["²", "２６３７９", "26379x"])
def test_redis_sentinel_ports_are_ascii_digits(port):
    with pytest.raises(ConfigError, match="REDIS_SENTINELS"):
        Settings.from_env({"REDIS_SENTINELS": f"s1:{port}"})


def test_the_sync_checkout_is_served_in_development_only_unless_enabled():
    assert Settings.from_env({"SHOP_ENV": "development"}).sync_checkout_on
    production = {"SHOP_ENV": "production", "SECRET_KEY": "k" * 48}
    assert not Settings.from_env(production).sync_checkout_on
    assert Settings.from_env({**production, "SYNC_CHECKOUT_ENABLED": "1"}).sync_checkout_on
    assert not Settings.from_env(
        {"SHOP_ENV": "development", "SYNC_CHECKOUT_ENABLED": "0"}
    ).sync_checkout_on
    with pytest.raises(ConfigError, match="SYNC_CHECKOUT_ENABLED"):
        Settings.from_env({"SYNC_CHECKOUT_ENABLED": "maybe"})


def test_limit_and_stream_settings_from_env():
    settings = Settings.from_env(
        {
            "SHOP_RATE_LIMIT": "5/second",
            "PAYMENT_RETRY_RATE_LIMIT": "3/minute",
            "SYNC_CHECKOUT_RATE_LIMIT": "off",
            "MAX_PAYMENT_ATTEMPTS": "4",
            "SSE_MAX_SECONDS": "120",
            "SSE_MAX_STREAMS": "50",
            "SSE_MAX_STREAMS_PER_CLIENT": "5",
            "METRICS_TOKEN": "t0ken",
        }
    )
    assert (settings.shop_rate_limit, settings.payment_retry_rate_limit) == ("5/second", "3/minute")
    assert settings.sync_checkout_rate_limit == "off" and settings.max_payment_attempts == 4
    assert (settings.sse_max_seconds, settings.sse_max_streams) == (120.0, 50)
    assert settings.sse_max_streams_per_client == 5 and settings.metrics_token == "t0ken"
    for bad in ({"MAX_PAYMENT_ATTEMPTS": "0"}, {"SSE_MAX_SECONDS": "0"}, {"SSE_MAX_STREAMS": "-1"}):
        with pytest.raises(ConfigError):
            Settings.from_env(bad)
    assert Settings.from_env({}).payments_rate_limit == 0
    assert Settings.from_env({"PAYMENTS_RATE_LIMIT": "1000"}).payments_rate_limit == 1000
