"""lhotse manifests both ways, through lhotse itself: a CutSet, or a RecordingSet with its
SupervisionSet, becomes manifest rows (one per supervision: segments of longer recordings are read
in place), and a manifest becomes a RecordingSet, a SupervisionSet and the CutSet of its
supervisions (k2/icefall and lhotse's data loaders read them)."""

from __future__ import annotations

import os
from pathlib import Path

from hlora_cli.data.audio import audio_info
from hlora_cli.data.importers import ImportResult, LanguageRule
from hlora_cli.data.importers.kaldi import recording_ids
from hlora_cli.data.manifest import Rejected, Utterance
from hlora_cli.errors import HloraError

# Seconds a supervision may run past its recording's end (lhotse's own default tolerance).
TOLERANCE = 1e-3
OUT_FILES = ("recordings.jsonl.gz", "supervisions.jsonl.gz", "cuts.jsonl.gz")


def _lhotse():
    try:
        import lhotse
    except ImportError as e:
        raise HloraError(f"lhotse manifests need the lhotse package: pip install 'hlora[data]' ({e})") from None
    return lhotse


def _load(path: Path, kind: str):
    """A lhotse manifest of class `kind` (CutSet, RecordingSet, SupervisionSet) from `path`."""
    lhotse = _lhotse()
    if not path.is_file():
        raise HloraError(f"{path}: no such file")
    try:
        manifest = lhotse.load_manifest(path)
    except Exception as e:  # lhotse raises what its parsers raise (JSON, gzip, its own checks)
        raise HloraError(f"{path}: not a lhotse manifest ({type(e).__name__}: {e})") from None
    if type(manifest).__name__ != kind:
        raise HloraError(
            f"{path}: a lhotse {type(manifest).__name__}, expected a {kind} "
            "(give CUTS, or RECORDINGS SUPERVISIONS in that order)"
        )
    return manifest


def _audio_path(recording, channel, base: Path) -> str:
    """The file of `recording` that holds `channel`; a relative path is taken from the folder of
    the manifest when it is not found from the working directory (lhotse writes either)."""
    sources = [s for s in recording.sources if channel is None or set(_channels(channel)) <= set(s.channels)]
    if len(sources) != 1:
        raise ValueError(f"audio: recording '{recording.id}' has no single source for channel {channel}")
    source = sources[0]
    if source.type != "file":
        raise ValueError(f"audio: recording '{recording.id}' is a lhotse '{source.type}' source, not a file")
    if len(source.channels) > 1 and set(_channels(channel)) != set(source.channels):
        raise ValueError(
            f"audio: channel {channel} of recording '{recording.id}' ({len(source.channels)} channels in one "
            "file): hlora reads a file's channels mixed down"
        )
    if recording.transforms:
        raise ValueError(f"audio: recording '{recording.id}' has lhotse transforms (speed, volume), not read here")
    path = Path(source.source)
    if not path.is_absolute() and not path.exists():
        path = base / path
    return str(path)


def _channels(channel) -> list[int]:
    return list(channel) if isinstance(channel, list) else [channel]


def _row(sup, recording, offset: float, rule: LanguageRule, base: Path) -> Utterance:
    """One supervision as a row: its segment of the recording (`offset`: where its cut starts)."""
    start = offset + sup.start
    end = start + sup.duration
    if start < -TOLERANCE or end > recording.duration + TOLERANCE:
        raise ValueError(
            f"segment: {start:g}-{end:g} s lies outside recording '{recording.id}' (0-{recording.duration:g} s)"
        )
    if sup.text is None:
        raise ValueError("text: the supervision has none")
    whole = abs(start) <= TOLERANCE and abs(end - recording.duration) <= TOLERANCE
    return Utterance(
        id=sup.id,
        audio=_audio_path(recording, sup.channel, base),
        lang=rule.language(sup.language),
        text=sup.text,
        start=None if whole else round(max(start, 0.0), 6),
        end=None if whole else round(min(end, recording.duration), 6),
        duration=round(sup.duration, 6),
        speaker=sup.speaker,
    )


def _rejected(sup, recording_id: str, reason: str) -> Rejected:
    row = {"id": sup.id, "recording": recording_id, "lang": sup.language, "text": sup.text}
    return Rejected({k: v for k, v in row.items() if v is not None}, reason)


def import_lhotse(paths: list[Path], lang: str | None = None, lang_map: dict[str, str] | None = None) -> ImportResult:
    """CUTS, or RECORDINGS SUPERVISIONS: one row per supervision (a cut's supervisions each)."""
    rule = LanguageRule.of(lang, lang_map)
    result = ImportResult()
    if len(paths) == 1:
        cuts = _load(paths[0], "CutSet")
        base = paths[0].parent
        for cut in cuts:
            if type(cut).__name__ != "MonoCut" or cut.recording is None:
                reason = f"cut: '{cut.id}' is a {type(cut).__name__} without a recording of its own"
                result.rejected.append(Rejected({"id": cut.id}, reason))
                continue
            for sup in cut.supervisions:
                _add(result, sup, cut.recording, cut.start, rule, base)
    elif len(paths) == 2:
        recordings = _load(paths[0], "RecordingSet")
        supervisions = _load(paths[1], "SupervisionSet")
        base = paths[0].parent
        for sup in supervisions:
            if sup.recording_id not in recordings:
                reason = f"recording: '{sup.recording_id}' is not in {paths[0]}"
                result.rejected.append(_rejected(sup, sup.recording_id, reason))
                continue
            _add(result, sup, recordings[sup.recording_id], 0.0, rule, base)
    else:
        raise HloraError("give CUTS, or RECORDINGS SUPERVISIONS (lhotse manifests, .jsonl or .jsonl.gz)")
    return result


def _add(result: ImportResult, sup, recording, offset: float, rule: LanguageRule, base: Path) -> None:
    try:
        result.utts.append(_row(sup, recording, offset, rule, base))
    except ValueError as e:
        result.rejected.append(_rejected(sup, recording.id, str(e)))


def export_lhotse(utts: list[Utterance], out_dir: Path) -> list[Path]:
    """recordings, supervisions and the cuts of the supervisions (cut = the supervision's segment),
    each written whole or not at all. Audio stays where the manifest points (absolute paths)."""
    lhotse = _lhotse()
    from lhotse.audio import AudioSource

    seen: set[str] = set()
    for u in utts:
        if u.id in seen:
            raise HloraError(f"utterance id '{u.id}' appears twice; lhotse ids must be unique")
        seen.add(u.id)
    rec_of = recording_ids(utts, segmented=True)
    recordings = []
    for audio, rec in sorted(rec_of.items(), key=lambda x: x[1]):
        info = audio_info(audio)
        source = AudioSource(type="file", channels=list(range(info.channels)), source=str(Path(audio).resolve()))
        recordings.append(lhotse.Recording(rec, [source], info.sample_rate, info.frames, info.duration))
    recording_set = lhotse.RecordingSet.from_recordings(recordings)
    supervisions = []
    for u in utts:
        rec = recording_set[rec_of[u.audio]]
        start = u.start or 0.0
        end = rec.duration if u.end is None else min(u.end, rec.duration)
        custom = {"text_norm": u.text_norm} if u.text_norm is not None else None
        supervisions.append(
            lhotse.SupervisionSegment(
                u.id,
                rec.id,
                start,
                round(end - start, 6),
                channel=0,
                text=u.text,
                language=u.lang,
                speaker=u.speaker,
                custom=custom,
            )  # fmt: skip
        )
    supervision_set = lhotse.SupervisionSet.from_segments(supervisions)
    cuts = lhotse.CutSet.from_manifests(recordings=recording_set, supervisions=supervision_set)
    cuts = cuts.trim_to_supervisions(keep_overlapping=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    # every file written aside first (lhotse picks the format from the suffix), then all put in place
    tmps = [out_dir / f".{name}.tmp.jsonl.gz" for name in OUT_FILES]
    try:
        for tmp, manifest in zip(tmps, (recording_set, supervision_set, cuts), strict=True):
            manifest.to_file(tmp)
        for tmp, name in zip(tmps, OUT_FILES, strict=True):
            os.replace(tmp, out_dir / name)
    finally:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
    return [out_dir / name for name in OUT_FILES]
