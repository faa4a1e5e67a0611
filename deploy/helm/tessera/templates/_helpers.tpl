{{/* Names and labels shared by every template. */}}
{{- define "tessera.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tessera.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tessera.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tessera.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "tessera.pluginName" -}}{{ include "tessera.fullname" . }}-kubelet-plugin{{- end -}}
{{- define "tessera.controllerName" -}}{{ include "tessera.fullname" . }}-controller{{- end -}}

{{/* The plugin's service account as the API server names its user. */}}
{{- define "tessera.pluginUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "tessera.pluginName" .) -}}
{{- end -}}

{{/* Fails the render with a message naming the value when a value is not one of the allowed. */}}
{{- define "tessera.validate" -}}
{{- if not (has .Values.kubeletPlugin.gpuBackend (list "nvml" "fake")) -}}
{{- fail (printf "kubeletPlugin.gpuBackend: %q is not one of nvml, fake" .Values.kubeletPlugin.gpuBackend) -}}
{{- end -}}
{{- if and (eq .Values.kubeletPlugin.gpuBackend "fake") (empty .Values.kubeletPlugin.fakeGpus) -}}
{{- fail "kubeletPlugin.fakeGpus: required when kubeletPlugin.gpuBackend is fake (e.g. {gpus: [{model: a100-40gb, count: 8}]})" -}}
{{- end -}}
{{- if not (has .Values.controller.placementPolicy (list "tessera" "fgd" "best-fit" "first-fit" "name-sorted")) -}}
{{- fail (printf "controller.placementPolicy: %q is not one of tessera, fgd, best-fit, first-fit, name-sorted" .Values.controller.placementPolicy) -}}
{{- end -}}
{{- if not (has .Values.logging.format (list "text" "json")) -}}
{{- fail (printf "logging.format: %q is not one of text, json" .Values.logging.format) -}}
{{- end -}}
{{- if not (hasPrefix "/" .Values.driverRoot) -}}
{{- fail (printf "driverRoot: %q is not an absolute host path (/, /run/nvidia/driver, ...)" .Values.driverRoot) -}}
{{- end -}}
{{- end -}}
