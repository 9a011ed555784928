"""A scripted scenario with a client generated from openapi/openapi.json by openapi-python-client.

Run by tests/api/contract.rs: KUBEGATE_URL, KUBEGATE_TOKEN and the generated package on PYTHONPATH.
Any drift between the contract and the service breaks it (a missing operation, a renamed field,
an answer that does not parse into the documented model).
"""
import os
import sys

from kubegate_client import AuthenticatedClient
from kubegate_client.api.apply import apply_namespaced_manifests
from kubegate_client.api.audit import list_audit_entries
from kubegate_client.api.deployments import (
    deploy_deployment,
    get_deployment_rollout,
    list_deployment_revisions,
    rollback_deployment,
    scale_deployment,
    set_deployment_image,
)
from kubegate_client.api.identity import get_whoami
from kubegate_client.models import (
    ApplyResult,
    AuditPage,
    ContainerSpec,
    DeploymentResult,
    DeploySpec,
    Identity,
    ManifestJsonType1Item,
    Problem,
    RevisionList,
    RollbackRequest,
    RollbackResult,
    RolloutStatus,
    ScaleRequest,
    SetImageRequest,
)

client = AuthenticatedClient(base_url=os.environ["KUBEGATE_URL"], token=os.environ["KUBEGATE_TOKEN"], raise_on_unexpected_status=True)
where = dict(cluster="dev", namespace="default", name="shop")


def expect(result, model, status):
    assert result.status_code == status, (result.status_code, result.content)
    assert isinstance(result.parsed, model), (type(result.parsed), result.content)
    return result.parsed


me = expect(get_whoami.sync_detailed(client=client), Identity, 200)
assert me.subject == "sdk-user", me

spec = DeploySpec(containers=[ContainerSpec(name="web", image="nginx:1.27")], replicas=1, change_cause="sdk release")
created = expect(deploy_deployment.sync_detailed(**where, client=client, body=spec), DeploymentResult, 201)
assert created.created and created.template_changed

scaled = expect(scale_deployment.sync_detailed(**where, client=client, body=ScaleRequest(replicas=3), wait=True, timeout_seconds=20), DeploymentResult, 200)
assert scaled.deployment.replicas.desired == 3 and scaled.rollout.done, scaled

imaged = expect(set_deployment_image.sync_detailed(**where, client=client, body=SetImageRequest(image="nginx:1.28", reason="sdk upgrade"), wait=True, timeout_seconds=20), DeploymentResult, 200)
assert imaged.template_changed and imaged.rollout.done

rolled = expect(rollback_deployment.sync_detailed(**where, client=client, body=RollbackRequest(expect_revision=2)), RollbackResult, 200)
assert rolled.message == "deployment.apps/shop rolled back" and rolled.to_revision == 1, rolled

status = expect(get_deployment_rollout.sync_detailed(**where, client=client), RolloutStatus, 200)
assert status.message, status
revisions = expect(list_deployment_revisions.sync_detailed(**where, client=client), RevisionList, 200)
assert [r.revision for r in revisions.items][-1] >= 2, revisions

bad = scale_deployment.sync_detailed(**where, client=client, body=ScaleRequest(replicas=-1))
assert bad.status_code == 422 and isinstance(bad.parsed, Problem) and bad.parsed.type_ == "urn:kubegate:problem:validation-failed", bad.content

config = ManifestJsonType1Item.from_dict({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sdk-config"}, "data": {"k": "v"}})
applied = expect(apply_namespaced_manifests.sync_detailed(cluster="dev", namespace="default", client=client, body=[config]), ApplyResult, 200)
assert applied.counts.created == 1 and applied.objects[0].result.value == "created", applied
again = expect(apply_namespaced_manifests.sync_detailed(cluster="dev", namespace="default", client=client, body=[config], diff=True), ApplyResult, 200)
assert again.dry_run and again.objects[0].result.value == "unchanged", again

audit = expect(list_audit_entries.sync_detailed(client=client, resource="shop", limit=100), AuditPage, 200)
actions = sorted({e.action for e in audit.items if e.action})
assert actions == ["deploy", "rollback", "scale", "set_image"], actions
print("scenario passed:", len(audit.items), "audit entries")
sys.exit(0)
