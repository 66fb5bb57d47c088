from pathlib import Path

import pytest

from advisor.config import PACKAGED_MODEL, Settings
from advisor.errors import ConfigError


def test_defaults_point_at_the_project_folders():
    settings = Settings.load(env={})
    assert settings.corpus_dir.name == "corpus" and settings.index_dir.name == "index"
    assert settings.model == PACKAGED_MODEL
    assert settings.chunk_tokens == 160


def test_env_vars_override_defaults_and_flags_override_env(tmp_path):
    env = {"ADVISOR_CHUNK_TOKENS": "120", "ADVISOR_CORPUS": str(tmp_path / "docs"), "ADVISOR_TOP_K": "3"}
    settings = Settings.load(env=env)
    assert settings.chunk_tokens == 120 and settings.top_k == 3
    assert settings.corpus_dir == (tmp_path / "docs").resolve()
    flagged = Settings.load(env=env, chunk_tokens=100, corpus_dir=Path(tmp_path / "other"), top_k=None)
    assert flagged.chunk_tokens == 100 and flagged.top_k == 3
    assert flagged.corpus_dir == (tmp_path / "other").resolve()


def test_a_bad_value_names_the_variable():
    with pytest.raises(ConfigError, match="ADVISOR_CHUNK_TOKENS='lots'"):
        Settings.load(env={"ADVISOR_CHUNK_TOKENS": "lots"})
    with pytest.raises(ConfigError, match="ADVISOR_CHUNK_OVERLAP"):
        Settings.load(env={"ADVISOR_CHUNK_OVERLAP": "100"})
    with pytest.raises(ConfigError, match="unknown setting"):
        Settings.load(env={}, colour="blue")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ADVISOR_MAX_FILE_MB", "nan"),  # once passed validation and wrote an empty index
        ("ADVISOR_MAX_FILE_MB", "inf"),
        ("ADVISOR_MAX_FILE_MB", "-1"),
        ("ADVISOR_MAX_FILE_MB", "0"),
        ("ADVISOR_LLM_TIMEOUT", "NaN"),
        ("ADVISOR_LLM_TIMEOUT", "infinity"),
        ("ADVISOR_LLM_TIMEOUT", "-5"),
        ("ADVISOR_TOP_K", "0"),
        ("ADVISOR_FLAT_MAX", "-3"),
        ("ADVISOR_CONCURRENCY", "0"),
        ("ADVISOR_QUEUE_SIZE", "100000000"),
    ],
)
def test_non_finite_negative_and_out_of_range_numbers_are_refused_by_name(variable, value):
    with pytest.raises(ConfigError, match=variable):
        Settings.load(env={variable: value})


def test_settings_made_directly_are_validated_for_nan_too():
    with pytest.raises(ConfigError, match="ADVISOR_MAX_FILE_MB=nan"):
        Settings(max_file_mb=float("nan")).validate()


def test_the_vector_store_setting_names_faiss_a_milvus_server_or_a_milvus_lite_file(tmp_path, monkeypatch):
    from advisor.stores.factory import kind_for
    from advisor.stores.faiss import FaissStore
    from advisor.stores.milvus import MilvusStore, server_uri

    assert kind_for(Settings.load(env={}).vector_store) is FaissStore
    server = Settings.load(env={"ADVISOR_VECTOR_STORE": "milvus://db.internal:19530", "ADVISOR_MILVUS_TOKEN": "u:p"})
    assert kind_for(server.vector_store) is MilvusStore and server_uri(server.vector_store) == "http://db.internal:19530"
    assert server.milvus_token == "u:p" and server.milvus_collection == "career_advisor"
    assert server_uri(Settings.load(env={}, vector_store="https://cloud.example:443").vector_store) == "https://cloud.example:443"
    monkeypatch.chdir(tmp_path)
    local = Settings.load(env={"ADVISOR_VECTOR_STORE": "data/vectors.db"})
    assert kind_for(local.vector_store) is MilvusStore and server_uri(local.vector_store) == str(tmp_path / "data" / "vectors.db")
    for bad, message in (
        ("pinecone", "is not a vector store"),
        ("milvus://", "names no host"),
        ("vectors.sqlite", "is not a vector store"),
    ):
        with pytest.raises(ConfigError, match=f"ADVISOR_VECTOR_STORE='{bad}' {message}"):
            Settings.load(env={"ADVISOR_VECTOR_STORE": bad})
    with pytest.raises(ConfigError, match="ADVISOR_MILVUS_COLLECTION='my-docs' is not a Milvus collection name"):
        Settings.load(env={"ADVISOR_MILVUS_COLLECTION": "my-docs", "ADVISOR_VECTOR_STORE": "milvus://db:19530"})
    assert Settings.load(env={"ADVISOR_MILVUS_COLLECTION": "my-docs"}).vector_store == "faiss"  # unused: FAISS
