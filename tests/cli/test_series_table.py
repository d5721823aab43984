"""The series table of ``info``/``convert``: how to choose another series is always a real way."""

from types import SimpleNamespace

from dwi_toolkit.cli._series import series_rows, series_table


def _info(uid, folder, number=3):
    return SimpleNamespace(series_number=number, description="DTI", vendor="canon", role="dwi",
                           bvals=[0.0, 1000.0], n_volumes=7, rule="standard", series_uid=uid,
                           files=[f"{folder}/IM{i}" for i in range(3)])


def test_distinct_uids_point_to_series_uid():
    infos = [_info("1.2.3", "/data/a"), _info("1.2.4", "/data/b", 4)]
    text = series_table(infos)
    assert text.splitlines()[-1] == "choose one with --series-uid UID"
    assert [r["folder"] for r in series_rows(infos)] == ["/data/a", "/data/b"]


def test_shared_uid_points_to_folders():
    """One series exported twice (classic + enhanced) shares its UID: the UID cannot choose, the folder can."""
    infos = [_info("1.2.3", "/data/cl"), _info("1.2.3", "/data/enh")]
    text = series_table(infos, [infos[0]])
    assert "--series-uid" not in text
    assert "its folder as the input path" in text
    assert text.splitlines()[-2:] == ["  /data/cl", "  /data/enh"]
