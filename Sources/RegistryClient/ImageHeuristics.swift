import RegistryTypes
// What a base image's config says about the image, for failing early: conda packages need conda,
// and a JupyterHub image needs a notebook environment. These are heuristics on the config alone
// (no layer is read), so they decide only what the config makes visible; see the rules below.

/// Whether the image has conda, by its config:
/// 1. `CONDA_DIR` is set and not empty in `Env` (the Jupyter docker-stacks convention), or
///    `CONDA_PREFIX` is (images built from an activated environment); or
/// 2. a `PATH` entry is a `bin` directory of a conda installation: a directory named `bin` or
///    `condabin` below a directory named `conda`, `anaconda…`, `miniconda…`, `miniforge…` or
///    `mambaforge…` (`/opt/conda/bin`, `/root/miniconda3/bin`, `/opt/miniforge3/condabin`).
/// micromamba-only images (`MAMBA_ROOT_PREFIX`) do not count: they have no `conda` command.
public func hasConda(config: ImageConfiguration) -> Bool {
    condaEvidence(config: config) != nil
}

/// Why `hasConda` said yes (`CONDA_DIR=/opt/conda`, `PATH contains /opt/conda/bin`), or nil.
public func condaEvidence(config: ImageConfiguration) -> String? {
    let environment = config.environment
    for name in ["CONDA_DIR", "CONDA_PREFIX"] {
        if let value = environment[name], !value.isEmpty { return "\(name)=\(value)" }
    }
    for directory in (environment["PATH"] ?? "").split(separator: ":") {
        let components = directory.split(separator: "/").map { $0.lowercased() }
        guard components.count >= 2, ["bin", "condabin"].contains(components.last!) else { continue }
        let installation = components[components.count - 2]
        if installation == "conda" || ["anaconda", "miniconda", "miniforge", "mambaforge"].contains(where: installation.hasPrefix) {
            return "PATH contains \(directory)"
        }
    }
    return nil
}

/// Whether the image looks ready to run as a JupyterHub notebook server, by its config. Any one
/// of these counts (the conventions of the Jupyter docker-stacks images and their derivatives):
/// 1. `Env` sets `NB_USER` or `NB_UID`, or any variable starting with `JUPYTER` (`JUPYTER_PORT`,
///    `JUPYTERHUB_…`, `JUPYTER_ENABLE_LAB`);
/// 2. a label's key or value mentions `jupyter` (docker-stacks' `maintainer="Jupyter Project …"`,
///    `org.opencontainers.image.source=…/jupyter/docker-stacks`);
/// 3. `Entrypoint` or `Cmd` runs `jupyter…`, `start-notebook…` or `start-singleuser…`
///    (`jupyterhub-singleuser` included);
/// 4. the user, `HOME` or working directory is docker-stacks' `jovyan`.
/// An image with none of these may still work (Jupyter installed without a trace in the config);
/// the operator only warns that it suits Job Submission.
public func imageLooksJupyterReady(config: ImageConfiguration) -> Bool {
    !jupyterEvidence(config: config).isEmpty
}

/// The config entries behind `imageLooksJupyterReady`, for messages (empty when none).
public func jupyterEvidence(config: ImageConfiguration) -> [String] {
    var evidence: [String] = []
    let environment = config.environment
    for name in environment.keys.sorted()
        where name == "NB_USER" || name == "NB_UID" || name.uppercased().hasPrefix("JUPYTER")
    {
        evidence.append("Env \(name)")
    }
    for (key, value) in config.labels.sorted(by: { $0.key < $1.key })
        where key.lowercased().contains("jupyter") || value.lowercased().contains("jupyter")
    {
        evidence.append("Label \(key)")
    }
    let commandWords = (config.entrypoint + config.cmd).flatMap { $0.split(whereSeparator: { $0 == " " || $0 == "/" }) }
    if let word = commandWords.first(where: { word in
        let lowered = word.lowercased()
        return lowered.hasPrefix("jupyter") || lowered.hasPrefix("start-notebook") || lowered.hasPrefix("start-singleuser")
    }) {
        evidence.append("command \(word)")
    }
    let places = [("User", config.user), ("HOME", environment["HOME"]), ("WorkingDir", config.workingDir)]
    for (name, value) in places {
        if let value, value.split(separator: "/").contains("jovyan") || value == "jovyan" {
            evidence.append("\(name) \(value)")
        }
    }
    return evidence
}
