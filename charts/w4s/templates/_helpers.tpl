{{/* Chart name, possibly overridden. */}}
{{- define "w4s.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, plus the chart name unless the release name contains it already. */}}
{{- define "w4s.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "w4s.selectorLabels" -}}
app.kubernetes.io/name: {{ include "w4s.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "w4s.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "w4s.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: w4s
{{- end }}

{{- define "w4s.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "w4s.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from (dict "image" <repository/tag/digest> "default" <tag>): repository@digest when a digest
is set (releases pin digests), else repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "w4s.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .default .image.tag) }}
{{- end }}
{{- end }}

{{/* The namespaces the operator watches: [] (all), the release namespace, or watchNamespaces. */}}
{{- define "w4s.watchNamespaces" -}}
{{- if .Values.rbac.singleNamespace }}
{{- if and .Values.watchNamespaces (ne (join "," .Values.watchNamespaces) .Release.Namespace) }}
{{- fail "rbac.singleNamespace watches the release namespace only: leave watchNamespaces empty (or install once per namespace)" }}
{{- end }}
{{- .Release.Namespace }}
{{- else }}
{{- join "," .Values.watchNamespaces }}
{{- end }}
{{- end }}

{{/* Resources only a ClusterRole can grant (cluster-scoped): kept out of the Role of a one-namespace install. */}}
{{- define "w4s.clusterScopedResources" -}}
runtimeclasses,customresourcedefinitions,namespaces
{{- end }}
