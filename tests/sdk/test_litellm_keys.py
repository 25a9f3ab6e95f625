"""LiteLLM's own key-management client (`litellm.proxy.client`, and its `litellm-proxy`
CLI) against the gateway's LiteLLM-compatible `/key/*` and `/team/*` API, with the real
openai SDK using the keys it creates (KEYS_GATEWAY_URL, KEYS_GATEWAY_MASTER_KEY).

Run by tests/tenancy.rs, which starts that gateway (virtual keys in a SQLite ledger);
tests/openai_sdk.rs leaves this file out.
"""

import json
import os
import subprocess
import sys
import uuid

import openai
import pytest
import requests
from litellm.proxy.client import Client
from litellm.proxy.client.exceptions import UnauthorizedError

BASE = os.environ["KEYS_GATEWAY_URL"]
MASTER = os.environ["KEYS_GATEWAY_MASTER_KEY"]


def llm(key):
    return openai.OpenAI(base_url=f"{BASE}/v1", api_key=key, max_retries=0, timeout=20)


def ask(key, model="up/echo"):
    return llm(key).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello there"}]
    )


@pytest.fixture
def admin():
    return Client(base_url=BASE, api_key=MASTER)


def test_a_key_made_by_litellm_s_client_is_used_updated_listed_and_deleted(admin):
    alias = f"client-{uuid.uuid4().hex[:8]}"
    created = admin.keys.generate(
        models=["up/echo"], duration="1h", key_alias=alias, team_id="sdk-team", user_id="sdk-user"
    )
    secret = created["key"]
    assert secret.startswith("sk-")
    assert created["key_alias"] == alias
    assert created["models"] == ["up/echo"]
    assert created["team_id"] == "sdk-team" and created["user_id"] == "sdk-user"
    assert created["key_name"] == f"sk-...{secret[-4:]}"
    assert created["expires"] is not None
    token = created["token"]

    # The key works for the models it names, and for nothing else.
    assert ask(secret).choices[0].message.content
    with pytest.raises(openai.AuthenticationError) as refused:
        ask(secret, model="mock/echo")
    assert refused.value.body["type"] == "key_model_access_denied"

    # Info by secret and by hash; the list by alias and by hash.
    for ref in (secret, token):
        info = admin.keys.info(ref)
        assert info["info"]["key_alias"] == alias
        assert info["info"]["models"] == ["up/echo"]
        assert "token" not in info["info"]
    listed = admin.keys.list(key_alias=alias, return_full_object=True, include_team_keys=False)
    assert [k["key_alias"] for k in listed["keys"]] == [alias]
    assert listed["total_count"] == 1
    assert admin.keys.list(key_hash=token)["keys"] == [token]
    assert admin.keys.list(team_id="sdk-team", size=100)["total_count"] >= 1

    # Update (models, alias), then delete by alias: the key stops working.
    renamed = alias + "-renamed"
    updated = admin.keys.update(secret, models=["up/*", "mock/*"], key_alias=renamed)
    assert updated["key_alias"] == renamed
    assert ask(secret, model="mock/echo").choices
    deleted = admin.keys.delete(key_aliases=[renamed])
    assert deleted["deleted_keys"] == [renamed]
    with pytest.raises(openai.AuthenticationError):
        ask(secret)
    with pytest.raises(requests.HTTPError) as missing:
        admin.keys.info(secret)
    assert missing.value.response.status_code == 404


def test_only_the_master_key_manages_keys(admin):
    secret = admin.keys.generate(key_alias=f"plain-{uuid.uuid4().hex[:8]}")["key"]
    with pytest.raises(requests.HTTPError) as refused:
        Client(base_url=BASE, api_key=secret).keys.list()
    assert refused.value.response.status_code == 403
    with pytest.raises(UnauthorizedError):
        Client(base_url=BASE, api_key="sk-not-a-key").keys.generate()
    admin.keys.delete(keys=[secret])


def test_teams_through_the_client_s_http_interface(admin):
    team = f"team-{uuid.uuid4().hex[:8]}"
    made = admin.http.request(
        "POST", "/team/new", json={"team_id": team, "team_alias": "Core", "models": ["up/*"]}
    )
    assert made["team_id"] == team
    assert any(t["team_id"] == team for t in admin.teams.list())
    key = admin.keys.generate(team_id=team)["key"]
    with pytest.raises(openai.AuthenticationError) as refused:
        ask(key, model="mock/echo")
    assert refused.value.body["type"] == "team_model_access_denied"
    assert ask(key).choices
    admin.http.request("POST", "/team/delete", json={"team_ids": [team]})
    with pytest.raises(openai.AuthenticationError):
        ask(key)


def test_the_litellm_proxy_cli_generates_and_lists_keys():
    cli = os.path.join(os.path.dirname(sys.executable), "litellm-proxy")
    env = dict(os.environ, LITELLM_PROXY_URL=BASE, LITELLM_PROXY_API_KEY=MASTER, NO_COLOR="1")
    alias = f"cli-{uuid.uuid4().hex[:8]}"

    def run(*args):
        done = subprocess.run([cli, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    created = run("keys", "generate", "--models", "up/echo,fast", "--key-alias", alias)
    assert created["models"] == ["up/echo", "fast"]
    listed = run("keys", "list", "--key-alias", alias, "--format", "json")
    assert listed["keys"][0]["key_alias"] == alias
    assert listed["keys"][0]["token"] == created["token"]
    assert ask(created["key"], model="fast").choices
