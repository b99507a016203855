"""Keras to full-integer int8 TFLite, shared by every trainer (food, birds).

The converter logs from C++ and Keras prints an export summary on every conversion; both go
to a temporary file, which would otherwise bury the progress bars and summary tables, and
whose tail is kept to explain a failed conversion.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

LOG_TAIL_CHARS = 4000


def tensorflow() -> Any:
    """TensorFlow, imported on first use (slow to import; quiet about its CPU banner)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def keras_to_int8_tflite(model: Any, representative_rows: npt.NDArray[np.float32]) -> bytes:
    """``model`` as int8 TFLite with int8 input and outputs, calibrated on these rows.

    The rows are fed one at a time, as ``[row[np.newaxis, :]]``, in the order given.
    """
    tf = tensorflow()

    def dataset() -> Iterator[list[npt.NDArray[np.float32]]]:
        for row in representative_rows:
            yield [row[np.newaxis, :]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with native_output_to_file() as log, warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": the int8 input's scale comes from
        # the representative dataset, which is what we want.
        warnings.simplefilter("ignore", UserWarning)
        try:
            return bytes(converter.convert())
        except Exception as e:  # the converter raises many types; keep its log with them
            log.seek(0)
            tail = log.read().decode("utf-8", "replace")[-LOG_TAIL_CHARS:]
            raise RuntimeError(f"TFLite conversion failed: {e}\n{tail}") from e


@contextlib.contextmanager
def native_output_to_file() -> Iterator[Any]:
    """File descriptors 1 and 2 (and Python's stdout) to a temporary file for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(io.StringIO()):
                yield sink
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
