"""Noise off by default: the named messages are dropped, anything else still shows."""

import logging
import warnings

from lightning.pytorch.utilities.rank_zero import rank_zero_info

from recdistill.engine.noise import quiet_noise


def test_named_noise_is_dropped_and_real_warnings_stay(caplog):
    quiet_noise()
    with caplog.at_level(logging.INFO):
        rank_zero_info("💡 Tip: For seamless cloud logging, try installing litlogger")
        rank_zero_info("GPU available: False, used: False")
        rank_zero_info("something the user should read")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["something the user should read"]
    with warnings.catch_warnings(record=True) as caught:
        quiet_noise()  # inside catch_warnings, whose filters start from the outer ones
        warnings.warn("Found 427 module(s) in eval mode at the start of training.")
        warnings.warn("a real problem")
        for _ in range(3):
            warnings.warn("an API will change", FutureWarning)
    texts = [str(w.message) for w in caught]
    assert texts == ["a real problem", "an API will change"]  # the repeated FutureWarning shows once
