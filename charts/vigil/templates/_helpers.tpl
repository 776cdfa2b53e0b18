{{/* Names of the operator's objects (fixed: one operator per release namespace). */}}
{{- define "vigil.name" -}}vigil-operator{{- end -}}
{{/* Cluster-scoped objects carry the release namespace, so two installs do not collide. */}}
{{- define "vigil.clusterName" -}}vigil-operator-{{ .Release.Namespace }}{{- end -}}
{{- define "vigil.uninstallName" -}}vigil-uninstall{{- end -}}

{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: vigil
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vigil.labels" -}}
{{ include "vigil.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{- define "vigil.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The operator's rules on the namespaces it watches: Vigil's own resources (it reads specs,
writes only status and finalizers, appends audit records), the workloads and routes it owns
(server-side apply: create and patch; scaling: patch; removing the Deployment and Service of a
version no longer wanted: delete; routes are never deleted, they go with their owner), and
the Events it posts. */}}
{{- define "vigil.namespacedRules" -}}
- apiGroups: ["vigil.dev"]
  resources: ["modeldeployments"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["vigil.dev"]
  resources: ["modeldeployments/status"]
  verbs: ["get", "patch"]
- apiGroups: ["vigil.dev"]
  resources: ["riskpolicies"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["vigil.dev"]
  resources: ["auditrecords"]
  verbs: ["get", "list", "watch", "create"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["networking.istio.io"]
  resources: ["virtualservices"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* Cluster-wide reads the admission webhook needs to judge a change (the referenced
Gateway may live in another namespace; allowedRoutes selects namespaces by label), and the one
webhook configuration whose caBundle it publishes. Read-only apart from that object. */}}
{{- define "vigil.webhookClusterRules" -}}
{{- if .Values.admission.webhook.enabled }}
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gateways"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get"]
- apiGroups: ["admissionregistration.k8s.io"]
  resources: ["validatingwebhookconfigurations"]
  resourceNames: [{{ .Values.admission.webhook.configurationName | quote }}]
  verbs: ["get", "patch"]
{{- end }}
{{- end -}}

{{/* What `vigil uninstall` needs on the namespaces the operator watched. */}}
{{- define "vigil.uninstallRules" -}}
- apiGroups: ["vigil.dev"]
  resources: ["modeldeployments"]
  verbs: ["get", "list", "patch"]
{{- end -}}

{{- define "vigil.checkValues" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail (printf "replicas: %d needs leaderElection.enabled=true (without it every replica acts on every rollout); set replicas: 1 or enable leader election" (int .Values.replicas)) -}}
{{- end -}}
{{- range .Values.watchNamespaces -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .) -}}
{{- fail (printf "watchNamespaces: %q is not a namespace name (lowercase letters, digits and '-', at most 63)" .) -}}
{{- end -}}
{{- end -}}
{{- if not (has .Values.logFormat (list "json" "text")) -}}
{{- fail (printf "logFormat: %q is not allowed; use json or text" .Values.logFormat) -}}
{{- end -}}
{{- end -}}
