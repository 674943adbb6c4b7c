import Foundation

/// The peer: the operator a Python team would write with kopf, doing less than image-builder
/// (a ConfigMap and a Job per ImageSpec, PrimeHub's status fields, status from Job events).
enum Peer {
    static let kopfVersion = "1.45.2"
    static let kubernetesVersion = "37.0.2"

    /// The peer's source, written next to its virtual environment.
    static let source = #"""
        # The benchmark's peer: a small kopf operator for imagespecs.primehub.io.
        import hashlib

        import kopf
        import kubernetes

        PUSH_PREFIX = None
        GROUP, VERSION, PLURAL = "primehub.io", "v1alpha1", "imagespecs"


        def spec_hash(spec):
            parts = [spec.get("baseImage", "")]
            packages = spec.get("packages") or {}
            for label in ("apt", "pip", "conda"):
                items = packages.get(label) or []
                if items:
                    parts.append(label + ":[" + ",".join(items) + "]")
            return hashlib.sha1(";".join(parts).encode()).hexdigest()[:8]


        @kopf.on.startup()
        def configure(settings, **_):
            global PUSH_PREFIX
            import os
            PUSH_PREFIX = os.environ["PEER_PUSH_PREFIX"]
            settings.posting.enabled = False
            kubernetes.config.load_kube_config()


        @kopf.on.create(GROUP, VERSION, PLURAL)
        @kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
        def build(spec, name, namespace, uid, patch, **_):
            digest = spec_hash(spec)
            job_name = f"{name}-{digest}"
            image = f"{PUSH_PREFIX}/{name}:{digest}"
            owner = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "ImageSpec", "name": name, "uid": uid,
                      "controller": True, "blockOwnerDeletion": True}]
            labels = {"app": "peer-build", "imagespecs.primehub.io/name": name}
            core = kubernetes.client.CoreV1Api()
            batch = kubernetes.client.BatchV1Api()
            config_map = {"metadata": {"name": job_name, "namespace": namespace, "labels": labels,
                                       "ownerReferences": owner},
                          "data": {"Dockerfile": f"FROM {spec.get('baseImage', '')}\n"}}
            job = {"metadata": {"name": job_name, "namespace": namespace, "labels": labels, "ownerReferences": owner},
                   "spec": {"backoffLimit": 0, "template": {
                       "metadata": {"labels": labels},
                       "spec": {"restartPolicy": "Never",
                                "containers": [{"name": "build", "image": "quay.io/buildah/stable",
                                                "args": ["build", image]}],
                                "volumes": [{"name": "context", "configMap": {"name": job_name}}]}}}}
            for create, body in ((core.create_namespaced_config_map, config_map),
                                 (batch.create_namespaced_job, job)):
                try:
                    create(namespace, body)
                except kubernetes.client.exceptions.ApiException as error:
                    if error.status != 409:
                        raise
            patch.status["phase"] = "Pending"
            patch.status["jobName"] = job_name
            patch.status["image"] = image


        @kopf.on.event("batch", "v1", "jobs", labels={"app": "peer-build"})
        def job_event(body, namespace, **_):
            owners = [o for o in body.get("metadata", {}).get("ownerReferences", []) if o.get("kind") == "ImageSpec"]
            if not owners:
                return
            status = body.get("status") or {}
            if status.get("succeeded"):
                phase = "Succeeded"
            elif status.get("failed"):
                phase = "Failed"
            elif status.get("active"):
                phase = "Running"
            else:
                return
            api = kubernetes.client.CustomObjectsApi()
            try:
                api.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, owners[0]["name"],
                    {"status": {"phase": phase, "jobName": body["metadata"]["name"]}})
            except kubernetes.client.exceptions.ApiException as error:
                if error.status != 404:
                    raise
        """#
}
