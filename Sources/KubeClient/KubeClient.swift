import KubeTypes

