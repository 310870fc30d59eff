"""Settings from the environment."""

import pytest

from orders.config import ConfigError, Settings


def test_embedded_defaults(tmp_path):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path.resolve()}/shop.db"
    assert settings.redis_url is None and not settings.uses_redis
    assert (settings.orders_concurrency, settings.payments_concurrency) == (2, 3)
    assert settings.notifications_concurrency == 5
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


def test_production_refuses_the_default_secret():
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        Settings.from_env({"SHOP_ENV": "production"})
    assert Settings.from_env({"SHOP_ENV": "production", "SECRET_KEY": "s3cret"}).is_production


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
    assert (
        Settings.from_env({}).payments_rate_limit,
        Settings.from_env({}).payments_rate_seconds,
    ) == (1000, 60)
