"""Writes the UCI optical digits as the package's byte resource (Sources/DDPM/Resources/UCIDigits/).

Source: the 1797 8×8 digits that scikit-learn bundles as `sklearn/datasets/data/digits.csv.gz` (the test
part of the UCI "Optical Recognition of Handwritten Digits" data set; E. Alpaydin and C. Kaynak, UCI
Machine Learning Repository, https://doi.org/10.24432/C50P49, CC BY 4.0). Each CSV row is 64 grey levels
0–16 (row-major 8×8) followed by the digit 0–9.

Output `digits.bin`, 1797·64 + 1797 = 116,805 bytes, no header:
  bytes [0, 115008)        the images in the file's order, image n at [64n, 64n + 64), row-major, one byte
                           per pixel, values 0–16;
  bytes [115008, 116805)   the labels, one byte per image, values 0–9.
and `digits.sha256`: the SHA-256 of digits.bin and of the source file, which the Swift tests compare.

Run with a Python that has scikit-learn (only to locate its bundled file) and numpy:
    python3 -m venv /tmp/venv-sk && /tmp/venv-sk/bin/pip install scikit-learn numpy
    /tmp/venv-sk/bin/python Fixtures/make_digits.py
Running it again writes byte-identical files (no timestamps).
"""
import gzip
import hashlib
import os

import numpy as np
import sklearn
import sklearn.datasets

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Sources", "DDPM", "Resources", "UCIDigits")
SOURCE = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "data", "digits.csv.gz")

COUNT, SIDE, LEVELS = 1797, 8, 16


def main():
    raw = open(SOURCE, "rb").read()
    rows = np.loadtxt(gzip.decompress(raw).decode("ascii").splitlines(), delimiter=",")
    assert rows.shape == (COUNT, SIDE * SIDE + 1), rows.shape
    assert np.all(rows == np.round(rows)), "non-integer values"
    images = rows[:, :-1].astype(np.uint8)
    labels = rows[:, -1].astype(np.uint8)
    assert images.min() == 0 and images.max() == LEVELS
    assert set(labels.tolist()) == set(range(10))

    # The same numbers as scikit-learn's own loader (an independent read of the same file).
    bunch = sklearn.datasets.load_digits()
    assert np.array_equal(bunch.data.astype(np.uint8), images)
    assert np.array_equal(bunch.target.astype(np.uint8), labels)

    blob = images.tobytes(order="C") + labels.tobytes()
    assert len(blob) == COUNT * SIDE * SIDE + COUNT == 116805
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "digits.bin"), "wb") as f:
        f.write(blob)
    counts = np.bincount(labels, minlength=10)
    held = np.bincount(labels[1600:], minlength=10)
    with open(os.path.join(OUT, "digits.sha256"), "w") as f:
        f.write(f"{hashlib.sha256(blob).hexdigest()}  digits.bin\n")
        f.write(f"{hashlib.sha256(raw).hexdigest()}  source: scikit-learn {sklearn.__version__} sklearn/datasets/data/digits.csv.gz\n")
        f.write(f"# {COUNT} images 8x8 (levels 0-{LEVELS}), then {COUNT} labels; written by Fixtures/make_digits.py\n")
        f.write("# labels 0-9, all images: " + " ".join(str(c) for c in counts) + "\n")
        f.write("# labels 0-9, held out (images 1600-1796): " + " ".join(str(c) for c in held) + "\n")
        f.write(f"# sum of all grey levels: {int(images.astype(np.int64).sum())}; image 0 row 0: {' '.join(str(v) for v in images[0, :8])}; labels 0-9: {' '.join(str(v) for v in labels[:10])}\n")
    print(f"wrote {OUT}/digits.bin ({len(blob)} bytes), sha256 {hashlib.sha256(blob).hexdigest()}")
    print("labels per digit:", counts.tolist(), "held out:", held.tolist())


if __name__ == "__main__":
    main()
