"""What `erdiff submit` and `erdiff jobs` build and check before (and without) talking to a cluster:
the runtime environment, the job's name, entrypoint and results location, the address and the auth token."""

import os
import shlex
import sys
import time
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

from cluster import auth, client, runtime_env, submit
from cluster.storage import StorageError
from erdiff.cli import main

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- runtime environment


def test_runtime_env_uploads_the_checkout_without_data_and_sets_env_vars():
    env = runtime_env.build_runtime_env(ROOT, None, {"D4RL_DATASET_DIR": "/mnt/nfs/d4rl", "PYTHONUNBUFFERED": "0"})
    file = yaml.safe_load(runtime_env.RUNTIME_ENV_FILE.read_text())
    assert env["working_dir"] == str(ROOT)
    assert env["excludes"] == file["excludes"]
    assert env["env_vars"] == {"PYTHONUNBUFFERED": "0", "D4RL_DATASET_DIR": "/mnt/nfs/d4rl"}
    assert "pip" not in env


def test_runtime_env_carries_pip_requirements_when_given():
    env = runtime_env.build_runtime_env(ROOT, ["numpy>=1.24"], {})
    assert env["pip"] == ["numpy>=1.24"]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _normalized(requirements) -> list[str]:
    return [str(Requirement(r)) for r in requirements]


def test_requirements_without_extras_are_the_projects_dependencies():
    assert runtime_env.project_requirements([]) == _normalized(_pyproject()["dependencies"])


def test_extras_are_expanded_and_ray_is_left_to_the_cluster():
    requirements = runtime_env.project_requirements(["all"])
    extras = _pyproject()["optional-dependencies"]
    for extra in ("envs", "minari", "analysis"):
        assert set(_normalized(extras[extra])) <= set(requirements)
    names = [Requirement(r).name for r in requirements]
    assert "optuna" in names and "ray" not in names
    assert len(names) == len(set(names))
    assert all(Requirement(r).marker is None for r in requirements)


def test_unknown_extra_lists_the_known_ones():
    with pytest.raises(runtime_env.RuntimeEnvError, match="unknown extra.*gpu.*has: .*tune"):
        runtime_env.project_requirements(["gpu"])


def test_env_assignments():
    assert runtime_env.parse_env_vars(["A=1", "B_2=x=y", "C="]) == {"A": "1", "B_2": "x=y", "C": ""}


@pytest.mark.parametrize("item", ["NOVALUE", "=x", "1A=x", "A-B=x"])
def test_bad_env_assignment(item):
    with pytest.raises(runtime_env.RuntimeEnvError, match="NAME=VALUE"):
        runtime_env.parse_env_vars([item])


def test_project_root_is_found_from_a_subfolder(tmp_path):
    assert runtime_env.find_project_root(ROOT / "tests") == ROOT
    with pytest.raises(runtime_env.RuntimeEnvError, match="no erdiff checkout"):
        runtime_env.find_project_root(tmp_path)


# ---------------------------------------------------------------- the job


def test_spec_path_is_taken_relative_to_the_checkout(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT / "tests")
    assert submit.spec_in_checkout("../pyproject.toml", ROOT) == "pyproject.toml"
    outside = tmp_path / "mine.yaml"
    outside.write_text("name: mine\n")
    with pytest.raises(submit.SubmitError, match="outside the uploaded checkout"):
        submit.spec_in_checkout(str(outside), ROOT)
    with pytest.raises(submit.SubmitError, match="does not exist"):
        submit.spec_in_checkout(str(tmp_path / "missing.yaml"), ROOT)


def test_results_default_to_the_checkout_only_for_a_local_cluster():
    assert submit.results_location(None, "http://127.0.0.1:8265", ROOT, "quick") == str(ROOT / "results/quick")
    assert submit.results_location(None, "http://localhost:8265", ROOT, "quick") == str(ROOT / "results/quick")
    with pytest.raises(submit.SubmitError, match="--out is required for the remote cluster"):
        submit.results_location(None, "http://10.0.0.5:8265", ROOT, "quick")


def test_an_absolute_out_is_passed_on():
    assert submit.results_location("/mnt/nfs/quick", "http://10.0.0.5:8265", ROOT, "quick") == "/mnt/nfs/quick"


@pytest.mark.parametrize("out, expected", [("results/quick", "must be an absolute path"),
                                           ("s3://bucket/quick", "must be a path")])
def test_relative_or_uri_out_is_refused(out, expected):
    with pytest.raises(StorageError, match=expected):
        submit.results_location(out, "http://127.0.0.1:8265", ROOT, "quick")


def test_submission_id_names_the_spec_and_the_time():
    now = 1_700_000_000.0
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    assert submit.submission_id("quickstart", now) == f"erdiff-quickstart-{stamp}"
    assert submit.submission_id("a b/c.d", now) == f"erdiff-a-b-c-d-{stamp}"


def test_entrypoint_runs_the_sweep_module_with_quoted_arguments():
    line = submit.sweep_entrypoint("tune/configs/my spec.yaml", "/mnt/nfs/out dir", resume=True)
    assert shlex.split(line) == ["python", "-m", "tune.sweep", "tune/configs/my spec.yaml",
                                 "--out", "/mnt/nfs/out dir", "--resume"]
    assert shlex.split(submit.sweep_entrypoint("s.yaml", "/o", resume=False, verbose=True))[-1] == "--verbose"


# ---------------------------------------------------------------- address and token


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No address or token from the environment; an empty home (no ~/.ray/auth_token)."""
    for name in (*client.ADDRESS_ENVS, auth.TOKEN_ENV, auth.TOKEN_PATH_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_address_from_flag_then_environment(clean_env, monkeypatch):
    assert client.resolve_address("http://head:8265/") == "http://head:8265"
    monkeypatch.setenv("RAY_ADDRESS", "http://other:8265")
    assert client.resolve_address(None) == "http://other:8265"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "https://api:443")
    assert client.resolve_address(None) == "https://api:443"
    assert client.resolve_address("http://head:8265") == "http://head:8265"


def test_address_must_be_the_dashboards_http_url(clean_env, monkeypatch):
    with pytest.raises(client.ClusterError, match="no cluster address"):
        client.resolve_address(None)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    with pytest.raises(client.ClusterError, match=r"\$RAY_ADDRESS '127.0.0.1:6379': expected .*http://HEAD:8265"):
        client.resolve_address(None)


def test_address_variables_are_hidden_while_connecting_and_restored(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    with client._address_env_hidden():
        assert "RAY_ADDRESS" not in os.environ
    assert os.environ["RAY_ADDRESS"] == "auto"


def test_token_sources_in_rays_order(clean_env, monkeypatch):
    assert auth.find_auth_token() is None
    default = clean_env / ".ray" / "auth_token"
    default.parent.mkdir()
    default.write_text("from-home\n")
    assert auth.find_auth_token().value == "from-home"
    token_file = clean_env / "token"
    token_file.write_text("from-path")
    monkeypatch.setenv(auth.TOKEN_PATH_ENV, str(token_file))
    assert auth.find_auth_token().value == "from-path"
    monkeypatch.setenv(auth.TOKEN_ENV, "from-env")
    token = auth.find_auth_token()
    assert (token.value, token.source) == ("from-env", "$RAY_AUTH_TOKEN")
    assert token.headers() == {"Authorization": "Bearer from-env"}


@pytest.mark.parametrize("content, expected", [(None, "cannot read"), ("  \n", "is empty")])
def test_broken_token_file_is_an_error(clean_env, monkeypatch, content, expected):
    path = clean_env / "token"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv(auth.TOKEN_PATH_ENV, str(path))
    with pytest.raises(auth.AuthTokenError, match=expected):
        auth.find_auth_token()


# ---------------------------------------------------------------- the commands, without a cluster


def test_unreachable_cluster_is_one_line(clean_env, capsys):
    assert main(["jobs", "list", "--address", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("erdiff jobs: error: cannot reach the Ray job server at http://127.0.0.1:9")


def test_submit_checks_the_spec_before_connecting(clean_env, capsys, tmp_path):
    outside = tmp_path / "mine.yaml"
    outside.write_text("name: mine\ntasks: [toy]\n")
    assert main(["submit", str(outside), "--address", "http://127.0.0.1:9"]) == 2
    assert "outside the uploaded checkout" in capsys.readouterr().err


def test_follow_and_no_wait_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        main(["submit", "x.yaml", "--follow", "--no-wait"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_broken_spec_fails_before_anything_is_sent(clean_env, capsys, tmp_path, monkeypatch):
    for name in ("pyproject.toml", "erdiff/__init__.py", "tune/__init__.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "sweep.yaml").write_text("name: broken\ntasks: [toy]\nseeds: -1\n")
    monkeypatch.chdir(tmp_path)
    assert main(["submit", "sweep.yaml", "--working-dir", str(tmp_path), "--address", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "sweep.yaml" in err and "seeds" in err
    assert "cannot reach" not in err


def test_without_rays_job_client_the_commands_say_what_to_install(clean_env, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray.job_submission", None)  # makes the import fail like a missing package
    assert main(["jobs", "list", "--address", "http://127.0.0.1:9"]) == 2
    assert "needs Ray's job client: pip install -e '.[tune]'" in capsys.readouterr().err
