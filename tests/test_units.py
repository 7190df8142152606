import pytest

from webhookd.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("30s", 30), ("5m", 300), ("2h", 7200), ("30d", 2_592_000), ("0s", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["30", "1.5s", "-1s", "s", "5 minutes", 30, True, None, "1w"])
def test_bad_durations_say_the_format(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (123, 123),
        ("900KiB", 921_600),
        ("900KB", 900_000),
        ("1MiB", 1_048_576),
        ("1MB", 1_000_000),
        ("2GiB", 2 * 1024**3),
        ("10B", 10),
        ("77", 77),
    ],
)
def test_sizes(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("bad", ["1.5MB", "10kb", "MiB", -1, True, [1], "1 TB"])
def test_bad_sizes(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)


def test_formatting_round_trips() -> None:
    for text in ("250ms", "30s", "5m", "2h", "30d", "1500ms"):
        assert format_duration(parse_duration(text)) == text
    for text in ("900KiB", "1MiB", "1GiB", "900KB", "77"):
        assert format_size(parse_size(text)) == text
