"""The checkout state machine table."""

import pytest

from orders.domain.states import ALLOWED, PROGRESS, check_move, status_of
from orders.errors import IllegalTransition
from orders.models import CheckoutStage as S
from orders.models import CheckoutStatus

HAPPY_PATH = [
    S.QUEUED,
    S.RESERVING_STOCK,
    S.CHARGING_PAYMENT,
    S.CREATING_ORDER,
    S.UPDATING_INVENTORY,
    S.COMPLETED,
]


def test_happy_path_is_allowed_and_progress_rises():
    for current, target in zip(HAPPY_PATH, HAPPY_PATH[1:], strict=False):
        check_move(current, target)
        assert PROGRESS[target] > PROGRESS[current]


@pytest.mark.parametrize("stage", [s for s in S if s not in (S.COMPLETED, S.FAILED)])
def test_every_live_stage_can_fail(stage):
    check_move(stage, S.FAILED)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.QUEUED, S.COMPLETED),
        (S.QUEUED, S.CHARGING_PAYMENT),
        (S.CHARGING_PAYMENT, S.RESERVING_STOCK),
        (S.COMPLETED, S.FAILED),
        (S.COMPLETED, S.QUEUED),
        (S.FAILED, S.COMPLETED),
        (S.RESERVING_STOCK, S.RESERVING_STOCK),
    ],
)
def test_illegal_moves_raise(current, target):
    with pytest.raises(IllegalTransition):
        check_move(current, target)


def test_only_a_failed_checkout_goes_back_to_queued():
    assert [s for s, targets in ALLOWED.items() if S.QUEUED in targets] == [S.FAILED]


def test_status_follows_stage():
    assert status_of(S.QUEUED) is CheckoutStatus.QUEUED
    assert status_of(S.CREATING_ORDER) is CheckoutStatus.PROCESSING
    assert status_of(S.COMPLETED) is CheckoutStatus.COMPLETED
    assert status_of(S.FAILED) is CheckoutStatus.FAILED
