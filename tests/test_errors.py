"""Every error whose message is meant for a user is an MpmaeError (the CLI prints it in one
line) and still the builtin error callers caught before."""

import pytest

from mpmae.cluster.submit import SubmitError
from mpmae.config import ConfigError
from mpmae.data.format.manifest import DatasetError
from mpmae.data.sources.mmearth_h5 import ReleaseError
from mpmae.data.stream.epochs import EmptyEpochError
from mpmae.errors import MpmaeError
from mpmae.modalities import PretextError
from mpmae.model.release import ReleaseFolderError, ReleaseNotFoundError
from mpmae.storage import PathNotFoundError, StorageError, StorageURIError
from mpmae.train.engine.checkpoint_store import CheckpointError


@pytest.mark.parametrize(("error", "builtin"), [
    (ConfigError, ValueError), (DatasetError, ValueError), (ReleaseError, ValueError),
    (EmptyEpochError, RuntimeError), (ReleaseFolderError, ValueError),
    (ReleaseNotFoundError, FileNotFoundError), (PretextError, ValueError),
    (PathNotFoundError, FileNotFoundError), (StorageError, RuntimeError),
    (StorageURIError, ValueError), (SubmitError, RuntimeError), (CheckpointError, RuntimeError),
], ids=lambda e: e.__name__)
def test_user_errors_are_mpmae_errors_and_keep_their_builtin_base(error, builtin):
    assert issubclass(error, MpmaeError) and issubclass(error, builtin)
