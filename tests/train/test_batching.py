import pytest

from hlora_cli.data.batching import DurationBatchSampler, duration_batches
from hlora_cli.errors import HloraError


def test_batches_respect_the_padded_budget_and_cover_everything():
    durations = [0.5 + (i * 37 % 23) / 5 for i in range(200)]
    batches = duration_batches(durations, batch_seconds=12.0, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(200))
    for b in batches:
        assert max(durations[i] for i in b) * len(b) <= 12.0
    # similar durations together: padding is a small share of the audio
    padded = sum(max(durations[i] for i in b) * len(b) for b in batches)
    assert sum(durations) / padded > 0.8


def test_same_seed_and_epoch_same_batches_other_epoch_differs():
    durations = [1.0 + (i % 7) * 0.3 for i in range(50)]
    assert duration_batches(durations, 5, 3, 0) == duration_batches(durations, 5, 3, 0)
    assert duration_batches(durations, 5, 3, 0) != duration_batches(durations, 5, 3, 1)


def test_ranks_get_disjoint_equal_shares_and_state_resumes():
    durations = [1.0 + (i % 5) * 0.2 for i in range(40)]
    r0 = DurationBatchSampler(durations, 4.0, seed=0, rank=0, world_size=2)
    r1 = DurationBatchSampler(durations, 4.0, seed=0, rank=1, world_size=2)
    assert len(r0) == len(r1)
    first0 = [r0.next() for _ in range(len(r0))]
    first1 = [r1.next() for _ in range(len(r1))]
    assert not {i for b in first0 for i in b} & {i for b in first1 for i in b}
    a = DurationBatchSampler(durations, 4.0, seed=0)
    for _ in range(len(a) + 3):  # into the second epoch
        a.next()
    b = DurationBatchSampler(durations, 4.0, seed=0)
    b.load_state_dict(a.state_dict())
    assert [a.next() for _ in range(5)] == [b.next() for _ in range(5)]


def test_mixed_batching_mixes_languages_that_sorted_batching_keeps_apart():
    # language 0 speaks 2-3 s utterances, language 1 6-7 s ones (as en and ja in the TTS recipe)
    langs = [i % 2 for i in range(200)]
    durations = [(2 if lang == 0 else 6) + (i * 37 % 11) / 10 for i, lang in enumerate(langs)]

    def mixed_share(batches):
        multi = [b for b in batches if len(b) > 1]
        return sum(len({langs[i] for i in b}) > 1 for b in multi) / len(multi)

    sorted_batches = duration_batches(durations, 16.0, seed=0, epoch=0)
    mixed = duration_batches(durations, 16.0, seed=0, epoch=0, mixed=True)
    assert mixed_share(sorted_batches) < 0.1 and mixed_share(mixed) > 0.5
    assert sorted(i for b in mixed for i in b) == list(range(200))
    assert all(max(durations[i] for i in b) * len(b) <= 16.0 for b in mixed)
    assert mixed == duration_batches(durations, 16.0, seed=0, epoch=0, mixed=True)
    with pytest.raises(HloraError, match="unknown batching 'random': choose mixed or sorted"):
        DurationBatchSampler(durations, 16.0, seed=0, batching="random")
