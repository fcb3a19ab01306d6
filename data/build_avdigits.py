"""Build ``redcore_lite/data_files/avdigits.npz`` (AV-digits) from the Free Spoken Digit recordings.

Usage (from the repository root)::

    .venv/bin/python data/build_avdigits.py /path/to/free-spoken-digit-dataset/recordings

The recordings folder holds the 3,000 FSDD WAV files ``{digit}_{speaker}_{take}.wav`` (8 kHz,
16-bit mono; 6 speakers x 10 digits x 50 takes). Each clip becomes a sequence of log-mel frames
computed here with numpy only: 25 ms Hann windows every 20 ms, a 256-point FFT, 32 triangular mel
filters (HTK mel scale) from 0 Hz to 4 kHz, ``10 log10(energy)`` in dB, rounded to 0.25 dB and
stored as float16 (the frames of all clips concatenated, with one length per clip). The written
digits are scikit-learn's bundled copy of the UCI optical digits (``load_digits``, 8 x 8 pixels of
counts 0..16, no download), stored as uint8. Pairing clips with written digits happens when the
data are loaded (``redcore_lite.datasets.load_avdigits``), not here.

The script checks the file names, counts, sample rate and dtype, then writes one compressed
``.npz`` with fixed zip timestamps (``write_npz`` of ``build_mfeat.py``), so a rebuild is
byte-identical.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import numpy as np
from scipy.io import wavfile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_mfeat import write_npz  # noqa: E402  (fixed zip timestamps)

SAMPLE_RATE = 8000  # Hz, every FSDD recording
WIN, HOP, N_FFT = 200, 160, 256  # 25 ms window, 20 ms hop, FFT size (samples)
N_MELS, FMIN, FMAX = 32, 0.0, 4000.0  # mel bands and their frequency range (Hz)
FLOOR_DB, DB_STEP = -100.0, 0.25  # energies below -100 dB are clipped; frames rounded to 0.25 dB
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
NUM_DIGITS, NUM_TAKES = 10, 50
NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
OUT = Path(__file__).resolve().parent.parent / "redcore_lite" / "data_files" / "avdigits.npz"


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``2595 log10(1 + f / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sample_rate: int = SAMPLE_RATE,
                   fmin: float = FMIN, fmax: float = FMAX) -> np.ndarray:
    """Triangular filters ``[n_mels, n_fft // 2 + 1]`` on the FFT bin frequencies.

    Filter k rises linearly (in Hz) from edge k to a peak of 1 at edge k + 1 and falls to 0 at edge
    k + 2, where the n_mels + 2 edges are equally spaced on the mel scale from fmin to fmax; so
    neighbouring filters sum to 1 between the first and the last centre.
    """
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    lo, centre, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rise, fall = (freqs - lo) / (centre - lo), (hi - freqs) / (hi - centre)
    return np.maximum(0.0, np.minimum(rise, fall))


def frames(signal: np.ndarray, win: int = WIN, hop: int = HOP) -> np.ndarray:
    """Overlapping frames ``[T, win]`` with ``T = 1 + (len - win) // hop`` (short clips zero-padded)."""
    if len(signal) < win:
        signal = np.pad(signal, (0, win - len(signal)))
    count = 1 + (len(signal) - win) // hop
    return signal[np.arange(win)[None, :] + hop * np.arange(count)[:, None]]


def log_mel(signal: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Log-mel frames ``[T, N_MELS]`` in dB (float64) of a 16-bit signal ``[num_samples]``.

    Each frame is Hann-windowed (periodic), its power spectrum ``|rfft|^2`` is summed by the mel
    filters, and ``10 log10(max(energy, 1e-10))`` is returned. The signal is scaled to [-1, 1).
    """
    x = np.asarray(signal, dtype=np.float64) / 32768.0
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WIN) / WIN)
    power = np.abs(np.fft.rfft(frames(x) * hann, N_FFT)) ** 2
    energy = power @ mel_filterbank(sample_rate=sample_rate).T
    return 10.0 * np.log10(np.maximum(energy, 10.0 ** (FLOOR_DB / 10.0)))


def quantise(db: np.ndarray) -> np.ndarray:
    """dB values rounded to ``DB_STEP`` and stored as float16 (exact: multiples of 0.25 in [-100, 100])."""
    return (np.round(db / DB_STEP) * DB_STEP).astype(np.float16)


def read_recordings(root: Path) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Signals and (digit, speaker index, take) of every clip, in (digit, speaker, take) order."""
    found = {}
    for path in root.glob("*.wav"):
        match = NAME.match(path.name)
        if not match or match.group(2) not in SPEAKERS:
            raise ValueError(f"{path}: unexpected name; expected {{digit}}_{{speaker}}_{{take}}.wav "
                             f"with a speaker among {SPEAKERS}")
        found[(int(match.group(1)), SPEAKERS.index(match.group(2)), int(match.group(3)))] = path
    want = [(d, s, t) for d in range(NUM_DIGITS) for s in range(len(SPEAKERS)) for t in range(NUM_TAKES)]
    missing = [k for k in want if k not in found]
    if missing or len(found) != len(want):
        raise ValueError(f"{root}: {len(found)} recordings, {len(missing)} missing (e.g. {missing[:3]}); "
                         f"expected {len(want)} = 10 digits x 6 speakers x 50 takes")
    signals = []
    for key in want:
        rate, x = wavfile.read(found[key])
        if rate != SAMPLE_RATE or x.dtype != np.int16 or x.ndim != 1:
            raise ValueError(f"{found[key]}: {rate} Hz, {x.dtype}, {x.ndim}-D; expected 8000 Hz int16 mono")
        signals.append(x)
    keys = np.array(want)
    return signals, keys[:, 0], keys[:, 1], keys[:, 2]


def written_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled UCI optical digits: pixels ``[1797, 64]`` (uint8, 0..16) and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = digits.data
    if pixels.shape != (1797, 64) or not np.array_equal(pixels, pixels.round()) or pixels.max() > 16:
        raise ValueError(f"load_digits: shape {pixels.shape}; expected (1797, 64) integers 0..16")
    return pixels.astype(np.uint8), digits.target.astype(np.uint8)


def build(root: Path, out: Path) -> dict[str, np.ndarray]:
    """Read, featurise, check and write every clip and written digit; return the arrays written."""
    signals, digit, speaker, take = read_recordings(root)
    feats = [quantise(log_mel(x)) for x in signals]
    audio = np.concatenate(feats)
    if not np.isfinite(audio).all():
        raise ValueError("audio: non-finite log-mel values")
    pixels, labels = written_digits()
    arrays = {
        "audio": audio,  # [sum T_i, N_MELS] float16, the frames of clip i follow those of clip i - 1
        "audio_lengths": np.array([len(f) for f in feats], dtype=np.uint16),  # [3000] frames per clip
        "audio_digit": digit.astype(np.uint8),
        "audio_speaker": speaker.astype(np.uint8),  # index into "speakers"
        "audio_take": take.astype(np.uint8),
        "speakers": np.array(SPEAKERS),
        "image": pixels,
        "image_labels": labels,
        "features": np.array(f"log-mel dB: sample_rate={SAMPLE_RATE} win={WIN} hop={HOP} "
                             f"n_fft={N_FFT} n_mels={N_MELS} fmin={FMIN:g} fmax={FMAX:g} "
                             f"hann=periodic mel=htk floor_db={FLOOR_DB:g} step_db={DB_STEP:g}"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_npz(out, arrays)
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings", type=Path, help="the FSDD recordings/ folder (3,000 WAVs)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    arrays = build(args.recordings, args.out)
    lengths = arrays["audio_lengths"]
    print(f"audio: {arrays['audio'].shape} {arrays['audio'].dtype}, {len(lengths)} clips of "
          f"{lengths.min()}-{lengths.max()} frames (median {int(np.median(lengths))})")
    print(f"image: {arrays['image'].shape} {arrays['image'].dtype}, classes "
          f"{np.bincount(arrays['image_labels']).tolist()}")
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
