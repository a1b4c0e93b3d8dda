"""Download: the instances of a resource one file each, and DICOMDIR media."""
import zipfile

import pytest

import orthanc_fn as o
import orthanc_fn_helpers as h


def test_download_instances_writes_one_identical_file_per_instance(conn_a, tmp_path, upload_study):
    study_id = upload_study(conn_a, 2, 3).id
    ids = o.get_children_ids(conn_a, o.STUDIES, study_id, o.INSTANCES)
    folder = tmp_path / "new" / "folder"
    saved = o.download_instances(conn_a, ids, folder)
    assert [instance_id for instance_id, _ in saved] == ids
    assert sorted(p.name for p in folder.iterdir()) == sorted(i + ".dcm" for i in ids)
    for instance_id, path in saved:
        with open(path, "rb") as f:
            assert f.read() == o.get_file(conn_a, instance_id)


def test_download_instances_raises_for_an_unknown_id_and_keeps_no_partial_file(conn_a,
                                                                              tmp_path):
    good = o.upload(conn_a, h.generate_test_dicom_file(8, 8))[0]
    with pytest.raises(o.NotFound):
        o.download_instances(conn_a, [good, "0" * 8 + "-unknown"], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [good + ".dcm"]


@pytest.mark.parametrize("level", [o.STUDIES, o.INSTANCES])
def test_download_media_saves_a_zip_with_a_dicomdir(conn_a, tmp_path, level, upload_study):
    import zipfile
    study_id = upload_study(conn_a, 1, 2).id
    orthanc_id = (study_id if level == o.STUDIES
                  else o.get_first_instance_id(conn_a, o.STUDIES, study_id))
    path = o.download_media(conn_a, level, orthanc_id, tmp_path / "media.zip")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    assert "DICOMDIR" in names
    assert len([n for n in names if n != "DICOMDIR"]) == (2 if level == o.STUDIES else 1)
