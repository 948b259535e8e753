from __future__ import annotations

import copy
import json

import pytest
from pydantic import ValidationError

from server import WebhookPayload
from server.payload import scope_matches
from tests.conftest import PAYLOADS, sample, sample_json

SAMPLES = sorted(p.name for p in PAYLOADS.glob("*.json"))


def test_there_are_samples_to_parse() -> None:
    assert len(SAMPLES) >= 6


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_parses_and_round_trips(name: str) -> None:
    payload = WebhookPayload.model_validate_json(sample(name))
    assert payload.to_json_dict() == sample_json(name)


def test_head_sha_is_read_from_the_hub_key() -> None:
    payload = WebhookPayload.model_validate_json(sample("repo-content-main-and-tag.json"))
    assert payload.repo.head_sha == "575db8b7a51b6f85eb06eee540738584589f131c"
    assert payload.repo.headSha == payload.repo.head_sha


def test_updated_refs_created_ref_has_no_old_sha() -> None:
    payload = WebhookPayload.model_validate_json(sample("repo-content-main-and-tag.json"))
    assert [r.ref for r in payload.updatedRefs or []] == ["refs/heads/main", "refs/tags/test"]
    assert payload.updatedRefs[1].oldSha is None


def test_space_fields_and_pr_ref() -> None:
    payload = WebhookPayload.model_validate_json(sample("repo-content-pr-ref.json"))
    assert payload.repo.subdomain == "some-user-gradio-user-history"
    assert payload.updatedRefs[0].ref == "refs/pr/5"


def test_discussion_and_comment_fields() -> None:
    payload = WebhookPayload.model_validate_json(sample("discussion-create-pr.json"))
    assert payload.discussion.isPullRequest is True
    assert payload.discussion.changes.base == "refs/heads/main"
    assert payload.comment.content == "Add co2 emissions information to the model card"


def test_updated_config() -> None:
    payload = WebhookPayload.model_validate_json(sample("repo-config-private.json"))
    assert payload.updatedConfig == {"private": False}


def test_hidden_comment_has_no_content_merge_commit_and_pinned() -> None:
    data = sample_json("discussion-create-pr.json")
    del data["comment"]["content"]
    data["comment"]["hidden"] = True
    data["discussion"]["status"] = "merged"
    data["discussion"]["changes"]["mergeCommitId"] = "abc123"
    data["discussion"]["pinned"] = True
    payload = WebhookPayload.model_validate(data)
    assert payload.comment.hidden is True and payload.comment.content is None
    assert payload.discussion.changes.mergeCommitId == "abc123"
    assert payload.discussion.pinned is True
    assert payload.to_json_dict() == data


def test_moved_to() -> None:
    data = sample_json("repo-config-private.json")
    data["event"] = {"action": "move", "scope": "repo"}
    data["movedTo"] = {"name": "new-owner/some-model", "owner": {"id": "abc"}}
    payload = WebhookPayload.model_validate(data)
    assert payload.movedTo.name == "new-owner/some-model"


def test_unknown_values_and_fields_are_kept_not_rejected() -> None:
    data = sample_json("discussion-create-pr.json")
    data = copy.deepcopy(data)
    data["event"] = {"action": "archive", "scope": "repo.config.dois", "origin": "ui"}
    data["repo"]["type"] = "kernel"
    data["repo"]["futureField"] = {"nested": [1, 2]}
    data["discussion"]["status"] = "locked"
    data["webhook"]["version"] = 4
    data["brandNewTopLevel"] = "kept"
    payload = WebhookPayload.model_validate_json(json.dumps(data))
    assert payload.repo.type == "kernel"
    assert payload.webhook.version == 4
    assert payload.to_json_dict() == data


def test_missing_required_field_is_rejected_with_its_location() -> None:
    data = sample_json("comment-create.json")
    del data["repo"]["name"]
    with pytest.raises(ValidationError, match=r"repo\.name"):
        WebhookPayload.model_validate(data)


@pytest.mark.parametrize(
    ("scope", "action", "effective"),
    [
        ("repo.content", "update", ("repo.content", "update")),
        ("repo.config.dois", "create", ("repo.config", "update")),
        ("discussion.comment.reaction", "create", ("discussion.comment", "update")),
        ("spaces.something", "create", ("spaces.something", "create")),
    ],
)
def test_unknown_narrower_scope_counts_as_update_on_known_parent(scope, action, effective) -> None:
    data = sample_json("comment-create.json")
    data["event"] = {"action": action, "scope": scope}
    assert WebhookPayload.model_validate(data).event.effective == effective


def test_scope_matching_is_by_whole_segments() -> None:
    assert scope_matches("repo.config.dois", "repo.config")
    assert scope_matches("repo.config", "repo")
    assert not scope_matches("repository", "repo")
    assert not scope_matches("repo", "repo.config")
