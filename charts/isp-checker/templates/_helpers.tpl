{{/* Chart name. */}}
{{- define "isp-checker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name, at most 63 characters (DNS label). */}}
{{- define "isp-checker.fullname" -}}
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

{{- define "isp-checker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "isp-checker.labels" -}}
helm.sh/chart: {{ include "isp-checker.chart" . }}
{{ include "isp-checker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "isp-checker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "isp-checker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "isp-checker.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "isp-checker.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The exporter's route prefix (--web.route-prefix): "" or "/path", no trailing slash. */}}
{{- define "isp-checker.routePrefix" -}}
{{- $p := trimSuffix "/" (default "" .Values.routePrefix) -}}
{{- if and $p (not (hasPrefix "/" $p)) }}{{ $p = printf "/%s" $p }}{{ end -}}
{{- $p -}}
{{- end }}
