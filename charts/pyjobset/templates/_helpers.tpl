{{/*
Labels of every object: the reference install's identity (name, instance), the part-of label deploy/ sets, who
manages the object, and the chart. Call with (dict "ctx" $ "component" "controller"); component may be empty.
*/}}
{{- define "pyjobset.labels" -}}
{{- $ctx := .ctx -}}
app.kubernetes.io/name: jobset
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/part-of: jobset
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $ctx.Chart.Name $ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- with $ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
What the Services and the PodDisruptionBudget select: JobSet's controller pod and nothing else in the namespace.
*/}}
{{- define "pyjobset.podSelector" -}}
app.kubernetes.io/name: jobset
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pyjobset.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/*
The controller's configuration file (config.jobset.x-k8s.io/v1alpha1 Configuration), strictly decoded by
`pyjobset run --config`.
*/}}
{{- define "pyjobset.config" -}}
apiVersion: config.jobset.x-k8s.io/v1alpha1
kind: Configuration
health:
  healthProbeBindAddress: :8081
  readinessEndpointName: readyz
  livenessEndpointName: healthz
metrics:
  bindAddress: :8443
webhook:
  port: 9443
{{- if .Values.certManager.enable }}
  certDir: /tmp/k8s-webhook-server/serving-certs
{{- end }}
leaderElection:
  leaderElect: {{ .Values.controller.leaderElection.enable }}
  resourceName: 6d4f6a47.jobset.x-k8s.io
  resourceLock: leases
  leaseDuration: 15s
  renewDeadline: 10s
  retryPeriod: 2s
internalCertManagement:
{{- if .Values.certManager.enable }}
  enable: false
{{- else }}
  enable: true
  webhookServiceName: jobset-webhook-service
  webhookSecretName: jobset-webhook-server-cert
{{- end }}
clientConnection:
  qps: {{ .Values.controller.clientConnection.qps }}
  burst: {{ .Values.controller.clientConnection.burst }}
{{- with .Values.controller.featureGates }}
featureGates:
  {{- toYaml . | nindent 2 }}
{{- else }}
featureGates: {}
{{- end }}
{{- end -}}
