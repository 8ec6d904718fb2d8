"""Sessions in DuckDB: schema and migrations, and repository functions over an open Store.

    from store import open_store, create_session, add_version, list_versions
    store = open_store(path)                       # one per process (st.cache_resource); thread-safe
    s = create_session(store, "KWS", graph, model="zoo:kws_dscnn", action="zoo")
    v = add_version(store, s.id, new_graph, "set_channels", {"node": "conv1", "channels": 16})

Every function is one transaction; user errors are one-line TinyStudioError subclasses (store.errors).
"""
from store.archive import export_session_bytes, export_session_file, import_session_bytes, import_session_file
from store.compare import compare_versions
from store.datasets import (DatasetInfo, add_session_dataset, delete_session_dataset, get_session_dataset,
                            list_session_datasets, session_dataset_bytes)
from store.db import Store, default_db_path, open_store
from store.access import as_user
from store.errors import (AuthError, InvalidValueError, JobStateError, NotFoundError, ReadOnlyError, SchemaTooNewError,
                          SessionFileError, StoreError, StoreLockedError, VersionNotInSessionError)
from store.exports import add_export, delete_export, export_bundle, get_export, list_exports
from store.integrity import check_integrity
from store.jobs import cancel_job, create_job, fail_job, finish_job, get_job, list_jobs, update_job
from store.profiles import get_profile, list_profiles, profile_version, save_profile, split_targets
from store.provenance import UNTRAINED_NOTE, version_accuracy
from store.records import ExportInfo, JobInfo, SessionInfo, VersionInfo
from store.schedules import set_schedule, version_schedule
from store.schema import SCHEMA_VERSION
from store.search import (StudyInfo, TrialInfo, create_study, delete_study, finish_study, get_study, list_studies,
                          list_trials, record_trial, set_study_job, trial_model)
from store.sessions import (branch_session, create_session, delete_session, duplicate_session, get_session,
                            list_sessions, rename_session, set_model_label, set_session_owner)
from store.uploads import session_upload
from store.versions import (add_version, current_graph, current_version, get_graph, get_version, list_versions,
                            restore_version, version_layers)

__all__ = [
    "ExportInfo", "InvalidValueError", "JobInfo", "JobStateError", "NotFoundError", "SCHEMA_VERSION",
    "SchemaTooNewError", "SessionFileError", "SessionInfo", "Store", "StoreError", "StoreLockedError",
    "VersionInfo", "VersionNotInSessionError", "add_export", "add_version", "branch_session", "cancel_job",
    "check_integrity", "compare_versions", "create_job", "create_session", "current_graph", "current_version",
    "default_db_path", "delete_export", "delete_session", "duplicate_session", "export_bundle",
    "export_session_bytes", "export_session_file", "fail_job", "finish_job", "get_export", "get_graph",
    "get_job", "get_profile", "get_session", "get_version", "import_session_bytes", "import_session_file",
    "list_exports", "list_jobs", "list_profiles", "list_sessions", "list_versions", "open_store",
    "profile_version", "rename_session", "restore_version", "save_profile", "set_model_label", "split_targets",
    "session_upload", "update_job", "version_layers",
    "DatasetInfo", "UNTRAINED_NOTE", "add_session_dataset", "delete_session_dataset", "get_session_dataset",
    "list_session_datasets", "session_dataset_bytes", "version_accuracy",
    "StudyInfo", "TrialInfo", "create_study", "delete_study", "finish_study", "get_study", "list_studies",
    "list_trials", "record_trial", "set_study_job", "trial_model",
    "AuthError", "ReadOnlyError", "as_user", "set_session_owner",
    "set_schedule", "version_schedule",
]
