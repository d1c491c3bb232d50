"""Deletion: DELETE semantics, finalizers, graceful pod deletion, eviction.

Role: :class:`DeletionPath` is what :class:`~kubesim.storage.store.Store`'s ``delete``, ``delete_ex``,
``remove_finalizer``, ``remove_now`` and ``evict`` are: preconditions, propagation policies (Background,
Foreground with the ``foregroundDeletion`` finalizer, Orphan with ``orphan``; batch/v1 Jobs default to Orphan),
deletionTimestamp and grace periods (a pod bound to a node waits for its kubelet), namespace termination and
PodDisruptionBudget checks for evictions. The garbage collector (:mod:`kubesim.storage.gc`) drives it.

Invariants: an object with finalizers or a pending grace period is never removed, only marked; a shorter grace
period on an object being deleted takes effect; ``default``, ``kube-system`` and ``kube-public`` cannot be
deleted.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

from kubesim.storage.buckets import Key
from kubesim.storage.hooks import WriteHooks, admit
from kubesim.storage.objects import JSON, AdmissionAttributes
from kubesim.storage.objectstore import ObjectStore
from kubesim.storage.resources import ResourceInfo
from kubesim.storage.writes import UpdateRequest, WritePath
from kubesim.util import errors
from kubesim.util.errors import ApiError
from kubesim.util.jsonutil import clone
from kubesim.util.selectors import match_label_selector
from kubesim.util.timefmt import now_rfc3339


class DeleteOptions(TypedDict, total=False):
    """The keyword options of :meth:`DeletionPath.delete_ex` (``metav1.DeleteOptions`` plus the request's
    ``apiVersion``, which decides batch/v1 Jobs' default propagation)."""

    propagation_policy: str | None
    grace_period_seconds: int | None
    preconditions: JSON | None
    dry_run: bool
    orphan_dependents: bool | None
    api_group_version: str | None


class DeletionPath:
    """DELETE, finalizer removal, eviction (see the module docstring)."""

    def __init__(self, objects: ObjectStore, writes: WritePath, hooks: WriteHooks) -> None:
        self.objects = objects
        self.writes = writes
        self.hooks = hooks

    async def delete(
        self,
        resource: str | ResourceInfo,
        name: str,
        namespace: str | None = None,
        **options: Unpack[DeleteOptions],
    ) -> JSON:
        """DELETE; the object (gone, or still there with a ``deletionTimestamp``). Options as :meth:`delete_ex`."""
        obj, _ = await self.delete_ex(resource, name, namespace, **options)
        return obj

    async def delete_ex(
        self,
        resource: str | ResourceInfo,
        name: str,
        namespace: str | None = None,
        *,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: JSON | None = None,
        dry_run: bool = False,
        orphan_dependents: bool | None = None,
        api_group_version: str | None = None,
    ) -> tuple[JSON, bool]:
        """Delete; returns the object and whether it is gone (False: held by finalizers or grace)."""
        info = self.objects.info(resource)
        if preconditions is not None and not isinstance(preconditions, dict):
            raise errors.bad_request("DeleteOptions.preconditions must be an object")
        if grace_period_seconds is not None and not isinstance(grace_period_seconds, int):
            raise errors.bad_request("DeleteOptions.gracePeriodSeconds must be an integer")
        if propagation_policy is not None and not isinstance(propagation_policy, str):
            raise errors.bad_request("DeleteOptions.propagationPolicy must be a string")
        info_store = self.objects.bucket(info).info
        ns = (namespace or "default") if info.namespaced else ""
        key = self.objects.key(info, name, ns)
        entry = self.objects.bucket(info).objects.get(key)
        if entry is None:
            raise errors.not_found(info.resource, info.group, name)
        old = entry.obj()
        meta = old["metadata"]
        if preconditions:
            # kube-apiserver checks these early (BeforeDelete) and names the kind, not the resource.
            if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
                raise errors.conflict(
                    info.kind,
                    info.group,
                    name,
                    f"the UID in the precondition ({preconditions['uid']}) does not match the UID in record "
                    f"({meta.get('uid')}). The object might have been deleted and then recreated",
                )
            prv = preconditions.get("resourceVersion")
            if prv and str(prv) != meta.get("resourceVersion"):
                raise errors.conflict(
                    info.kind,
                    info.group,
                    name,
                    f"the ResourceVersion in the precondition ({prv}) does not match the ResourceVersion in record "
                    f"({meta.get('resourceVersion')}). The object might have been modified",
                )
        if propagation_policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                [
                    errors.field_cause(
                        "FieldValueNotSupported",
                        "propagationPolicy",
                        f'Unsupported value: "{propagation_policy}": supported values: "Foreground", "Background", '
                        '"Orphan", "nil"',
                    )
                ],
            )
        if propagation_policy is None:
            if orphan_dependents is True:
                propagation_policy = "Orphan"
            elif orphan_dependents is False:
                propagation_policy = "Background"
            elif info_store.storage == ("batch", "jobs") and (api_group_version in (None, "batch/v1")):
                propagation_policy = "Orphan"
            else:
                propagation_policy = "Background"
        if self.hooks.validating:
            attrs = AdmissionAttributes(
                "DELETE",
                info,
                ns,
                name,
                None,
                self.objects.view(info, clone(old)),
                "",
                dry_run,
                {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1", "propagationPolicy": propagation_policy},
            )
            await admit(self.hooks.validating, attrs)
        if dry_run:
            return self.objects.view(info, old), False
        new = clone(old)
        nmeta = new["metadata"]
        finalizers = list(nmeta.get("finalizers") or [])
        if propagation_policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
            finalizers = [f for f in finalizers if f != "foregroundDeletion"]
        elif propagation_policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
            finalizers = [f for f in finalizers if f != "orphan"]
        elif propagation_policy == "Background":
            finalizers = [f for f in finalizers if f not in ("orphan", "foregroundDeletion")]
        grace = self._grace_period(info_store, old, grace_period_seconds)
        if info_store.storage == ("", "namespaces") and name in ("default", "kube-system", "kube-public"):
            raise errors.forbidden("namespaces", "", name, "this namespace may not be deleted")
        if info_store.storage == ("", "namespaces"):
            if not meta.get("deletionTimestamp"):
                nmeta["deletionTimestamp"] = now_rfc3339(self.objects.clock)
                nmeta["deletionGracePeriodSeconds"] = 0
                new.setdefault("status", {})["phase"] = "Terminating"
                if finalizers != (meta.get("finalizers") or []):
                    nmeta["finalizers"] = finalizers
                return self.objects.commit(info_store, key, new, entry), False
            return old, False
        if meta.get("deletionTimestamp"):
            # Already being deleted: only a shorter grace period (a kubelet's final delete) changes anything.
            held = bool(meta.get("finalizers"))
            if grace == 0 and not held:
                return self.objects.view(info, self.objects.commit_delete(info_store, key, new, entry)), True
            changed = False
            if grace < int(meta.get("deletionGracePeriodSeconds") or 0):
                nmeta["deletionGracePeriodSeconds"] = grace
                nmeta["deletionTimestamp"] = now_rfc3339(lambda: self.objects.clock() + grace)
                changed = True
            if finalizers != list(meta.get("finalizers") or []) and finalizers:
                nmeta["finalizers"] = finalizers
                changed = True
            if changed:
                return self.objects.view(info, self.objects.commit(info_store, key, new, entry)), False
            return self.objects.view(info, old), False
        if finalizers or grace > 0:
            nmeta["finalizers"] = finalizers
            if not finalizers:
                nmeta.pop("finalizers", None)
            nmeta["deletionTimestamp"] = now_rfc3339(lambda: self.objects.clock() + grace)
            nmeta["deletionGracePeriodSeconds"] = grace
            if meta.get("generation"):
                nmeta["generation"] = int(meta["generation"]) + 1
            return self.objects.view(info, self.objects.commit(info_store, key, new, entry)), False
        return self.objects.view(info, self.objects.commit_delete(info_store, key, new, entry)), True

    def _grace_period(self, info: ResourceInfo, obj: JSON, requested: int | None) -> int:
        if info.storage != ("", "pods"):
            return 0
        spec = obj.get("spec") or {}
        phase = (obj.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(0, int(requested))
        return int(spec.get("terminationGracePeriodSeconds", 30) or 0)

    async def remove_finalizer(
        self, resource: str | ResourceInfo, name: str, namespace: str | None, finalizer: str
    ) -> None:
        """Drop one finalizer (used by the garbage collector); the object goes when none remain."""
        info = self.objects.info(resource)

        def build(old: JSON) -> JSON:
            fins = [f for f in old["metadata"].get("finalizers") or [] if f != finalizer]
            old["metadata"]["finalizers"] = fins
            if not fins:
                del old["metadata"]["finalizers"]
            return old

        try:
            await self.writes.guaranteed_update(
                UpdateRequest(info, namespace or "", name, field_manager="kubesim-gc"), build
            )
        except ApiError as err:
            if err.code != 404:
                raise

    def remove_now(self, info: ResourceInfo, key: Key) -> None:
        """Final removal bypassing finalizers (namespace controller after its content is gone)."""
        entry = self.objects.bucket(info).objects.get(key)
        if entry is not None:
            self.objects.commit_delete(self.objects.bucket(info).info, key, entry.obj(), entry)

    async def evict(self, name: str, namespace: str, grace_period_seconds: int | None = None) -> JSON:
        """POST pods/<name>/eviction: honour PodDisruptionBudgets (429 when one allows no disruption), mark the
        pod ``DisruptionTarget`` (reason ``EvictionByEvictionAPI``) and delete it gracefully. As kube-apiserver,
        budgets guard only pods that still count: a Pending, terminal or deleting pod is deleted regardless."""
        pod = self.objects.get_entry(self.objects.info("pods"), name, namespace).obj()
        labels = (pod.get("metadata") or {}).get("labels") or {}
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        ignore_budgets = phase in ("Pending", "Succeeded", "Failed") or bool(pod["metadata"].get("deletionTimestamp"))
        for pdb in [] if ignore_budgets else await self.objects.list("poddisruptionbudgets.policy", namespace):
            selector = (pdb.get("spec") or {}).get("selector")
            if not match_label_selector(selector, labels):  # nil selects nothing, {} everything
                continue
            if int((pdb.get("status") or {}).get("disruptionsAllowed") or 0) < 1:
                raise ApiError(
                    errors.status(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        {
                            "causes": [
                                {
                                    "reason": "DisruptionBudget",
                                    "message": f"The disruption budget "
                                    f"{pdb['metadata']['name']} needs 1 healthy pods and has 0 currently",
                                }
                            ]
                        },
                    ),
                    {"Retry-After": "10"},
                )
        if phase not in ("Succeeded", "Failed"):

            def mark(obj: JSON) -> JSON:
                conds = obj.setdefault("status", {}).setdefault("conditions", [])
                conds[:] = [c for c in conds if c.get("type") != "DisruptionTarget"]
                conds.append(
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "EvictionByEvictionAPI",
                        "message": "Eviction API: evicting",
                        "lastTransitionTime": now_rfc3339(self.objects.clock),
                    }
                )
                return obj

            await self.writes.update_fn(
                "pods", name, namespace, mark, subresource="status", field_manager="kube-apiserver"
            )
        return await self.delete("pods", name, namespace, grace_period_seconds=grace_period_seconds)
