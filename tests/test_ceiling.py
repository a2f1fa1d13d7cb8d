"""ceiling.py's classifiers: the CNN's shape follows --channels and --convs, and a bad --channels is one line."""

import pytest
import torch
import torch.nn as nn

from ceiling import channel_list, cnn, main


@pytest.mark.parametrize("channels, convs", [((16, 32), 1), ((8, 16, 24), 2)])
def test_the_cnn_has_convs_per_stage_and_ends_in_the_last_stage_s_channels(channels, convs):
    trunk, features = cnn(channels, convs)
    assert features == channels[-1]
    assert sum(isinstance(m, nn.Conv2d) for m in trunk.modules()) == len(channels) * convs
    assert sum(isinstance(m, nn.MaxPool2d) for m in trunk.modules()) == len(channels)
    assert trunk(torch.rand(2, 3, 32, 32)).shape == (2, channels[-1])


def test_channel_list_reads_commas_and_refuses_anything_else():
    assert channel_list("16,32,64") == (16, 32, 64)
    for bad in ("", "16,,32", "a,b", "16,0"):
        with pytest.raises(Exception, match="comma-separated"):
            channel_list(bad)


def test_a_bad_channels_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--channels=16,x"])
    assert exit_info.value.code == 2
    assert "not a comma-separated list" in capsys.readouterr().err
