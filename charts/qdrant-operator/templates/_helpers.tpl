{{/*
Names. With the release named qdrant-operator (as the README installs it), every object has
the name deploy/ gives it. The Lease (qdrant-operator) and the label app=qdrant-operator, by
which the operator finds its own Pods, are fixed: one release per namespace.
*/}}
{{- define "qdrant-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object: deploy/'s app label and Helm's standard ones. */}}
{{- define "qdrant-operator.labels" -}}
app: qdrant-operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The operator's Pods, as deploy/ selects them (a Deployment's selector cannot change). */}}
{{- define "qdrant-operator.selectorLabels" -}}
app: qdrant-operator
component: operator
{{- end -}}

{{/* The Lease: the operator's default --lease-name, which the leader-election Role names. */}}
{{- define "qdrant-operator.leaseName" -}}qdrant-operator{{- end -}}

{{/*
A duration in milliseconds, from the forms values.schema.json allows: whole numbers with
ms, s, m or h, concatenated (15s, 500ms, 1m30s).
*/}}
{{- define "qdrant-operator.ms" -}}
{{- $unit := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 -}}
{{- $total := 0 -}}
{{- range regexFindAll "[0-9]+(ms|s|m|h)" . -1 -}}
{{- $n := regexFind "^[0-9]+" . -}}
{{- $total = add $total (mul (atoi $n) (get $unit (trimPrefix $n .))) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
What the operator would refuse at start-up (src/config.rs), refused at install time instead,
so a bad value fails `helm install` rather than crash-looping every replica.
*/}}
{{- define "qdrant-operator.validate" -}}
{{- $le := .Values.leaderElection -}}
{{- $ld := include "qdrant-operator.ms" $le.leaseDuration | atoi -}}
{{- $rd := include "qdrant-operator.ms" $le.renewDeadline | atoi -}}
{{- $rp := include "qdrant-operator.ms" $le.retryPeriod | atoi -}}
{{- $drain := include "qdrant-operator.ms" .Values.drainTimeout | atoi -}}
{{- if or (lt $ld 1000) (ne (mod $ld 1000) 0) -}}
{{- fail (printf "leaderElection.leaseDuration (%s) must be a whole number of seconds, at least 1s: the Lease stores seconds" $le.leaseDuration) -}}
{{- end -}}
{{- if le $ld $rd -}}
{{- fail (printf "leaderElection.leaseDuration (%s) must be greater than leaderElection.renewDeadline (%s)" $le.leaseDuration $le.renewDeadline) -}}
{{- end -}}
{{- if le $rp 0 -}}
{{- fail (printf "leaderElection.retryPeriod (%s) must be greater than 0" $le.retryPeriod) -}}
{{- end -}}
{{- /* The operator's retry jitter is 1.2: renewDeadline > 1.2 × retryPeriod. */ -}}
{{- if le (mul $rd 10) (mul $rp 12) -}}
{{- fail (printf "leaderElection.renewDeadline (%s) must be greater than 1.2 × leaderElection.retryPeriod (%s)" $le.renewDeadline $le.retryPeriod) -}}
{{- end -}}
{{- if or (le $drain 0) (ge $drain (mul .Values.terminationGracePeriodSeconds 1000)) -}}
{{- fail (printf "drainTimeout (%s) must be greater than 0 and shorter than terminationGracePeriodSeconds (%v s), so the leader can drain and release the Lease before it is killed" .Values.drainTimeout .Values.terminationGracePeriodSeconds) -}}
{{- end -}}
{{- end -}}
