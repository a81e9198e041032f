from encoders.behaviour import StateConfig, apply_event
from streams.records.inputs import Event
from streams.records.scoring import ScoringRequest, latest_per_user
from streams.records.user_state import UserState


def request(user: str, version: int) -> ScoringRequest:
    state = UserState()
    for n in range(version):
        state = apply_event(
            state, Event(f"{user}-{n}", "click", user, "i", n), None, None, StateConfig()
        )
    return ScoringRequest(user, state, f"{user}-{version - 1}", version, 5)


def test_each_user_scored_once_on_newest_state_in_first_seen_order():
    batch = [request("a", 1), request("b", 1), request("a", 3), request("c", 2), request("a", 2)]
    out = latest_per_user(batch)
    assert [r.user_id for r in out] == ["a", "b", "c"]
    assert [r.state.version for r in out] == [3, 1, 2]


def test_request_round_trips_through_bytes():
    original = request("u", 4)
    assert ScoringRequest.from_json(original.to_json()) == original
