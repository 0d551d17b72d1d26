// Resource types of the public REST API (see openapi.json).

export type Role = "viewer" | "operator" | "admin";
export type Scope = "read" | "write" | "admin";

export interface Page<T> {
  items: T[];
  next_cursor?: string | null;
}

export type InstanceStatus =
  | "pending"
  | "provisioning"
  | "running"
  | "stopping"
  | "stopped"
  | "rebooting"
  | "error"
  | "terminating"
  | "terminated";

export const INSTANCE_STATUSES: InstanceStatus[] = [
  "pending",
  "provisioning",
  "running",
  "stopping",
  "stopped",
  "rebooting",
  "error",
  "terminating",
  "terminated",
];

export interface Instance {
  id: string;
  name: string;
  project_id: string;
  type: string;
  image_id: string;
  image: string;
  status: InstanceStatus;
  status_reason?: string | null;
  desired: "running" | "stopped" | "terminated";
  cpus: number;
  memory_bytes: number;
  command?: string[];
  env?: Record<string, string>;
  labels?: Record<string, string>;
  restart: "always" | "on-failure" | "never";
  ip?: string | null;
  nics?: InstanceNic[];
  security_groups?: string[];
  exit_code?: number | null;
  restart_count: number;
  created_at: string;
  updated_at: string;
  started_at?: string | null;
  cloned_from?: string | null;
  volumes?: InstanceVolume[];
}

export interface Operation {
  id: string;
  kind: string;
  status: "pending" | "running" | "succeeded" | "failed";
  progress: number;
  message?: string | null;
  error?: { code: string; message: string } | null;
  resource_type?: string | null;
  resource_id?: string | null;
  created_at: string;
  updated_at: string;
  finished_at?: string | null;
  project_id?: string | null;
}

export interface Image {
  id: string;
  name: string;
  project_id?: string | null;
  source: string;
  description?: string | null;
  status: "building" | "ready" | "failed";
  status_reason?: string | null;
  digest?: string | null;
  size_bytes?: number | null;
  created_at: string;
}

export interface Project {
  id: string;
  name: string;
  description?: string | null;
  created_at: string;
  updated_at: string;
}

export interface Member {
  user_id: string;
  user_name: string;
  role: Role;
  added_at: string;
}

export interface UsageLine {
  used: number;
  limit?: number | null;
}

export interface Usage {
  project_id: string;
  resources: Record<string, UsageLine>;
}

export type Quota = Record<string, number | null>;

export interface UserDetails {
  id: string;
  name: string;
  role: Role;
  email?: string | null;
  display_name?: string | null;
  created_at: string;
  disabled?: boolean;
  updated_at?: string;
}

export interface Token {
  id: string;
  name: string;
  prefix: string;
  scope: Scope;
  user_id: string;
  created_at: string;
  expires_at?: string | null;
  last_used_at?: string | null;
  project_id?: string | null;
}

export interface AuditEntry {
  seq: number;
  time: string;
  actor: string;
  actor_token?: string | null;
  source?: string | null;
  action: string;
  resource_type?: string | null;
  resource_id?: string | null;
  result: string;
  request_id?: string | null;
}

export interface MetricPoint {
  time: string;
  cpu_percent: number;
  memory_bytes: number;
  pids: number;
  net_rx_bytes: number;
  net_tx_bytes: number;
}

export interface MetricSeries {
  instance_id: string;
  period: string;
  resolution_secs: number;
  points: MetricPoint[];
}

export interface LogEntry {
  time: string;
  stream: string;
  line: string;
}

export interface RoostEvent {
  id: number;
  time: string;
  type: string;
  resource_type: string;
  resource_id: string;
  data?: unknown;
}

export interface Network {
  id: string;
  name: string;
  project_id: string;
  cidr: string;
  gateway: string;
  bridge: string;
  nat: boolean;
  dns: boolean;
  default: boolean;
  peers: string[];
  instance_count: number;
  addresses_used: number;
  addresses_total: number;
  created_at: string;
}

export interface InstanceNic {
  name: string;
  network_id: string;
  network: string;
  ip: string;
  mac: string;
}

export interface SecurityGroupRule {
  id: string;
  direction: "ingress" | "egress";
  protocol: "tcp" | "udp" | "icmp" | "all";
  ports?: string | null;
  cidr?: string | null;
  security_group?: string | null;
  description?: string | null;
}

export interface SecurityGroup {
  id: string;
  name: string;
  project_id: string;
  description?: string | null;
  default: boolean;
  rules: SecurityGroupRule[];
  instance_count: number;
  created_at: string;
}

export interface PortForward {
  id: string;
  project_id: string;
  instance_id: string;
  instance: string;
  host_port: number;
  instance_port: number;
  protocol: "tcp" | "udp";
  target_ip?: string | null;
  created_at: string;
}

export interface Bucket {
  id: string;
  name: string;
  project_id: string;
  objects: number;
  size_bytes: number;
  public_read: boolean;
  versioning?: string | null;
  created_at: string;
  created_by?: string | null;
}

export interface S3Key {
  id: string;
  description?: string | null;
  user_id: string;
  /** The names the key's buckets had when it was made. */
  buckets?: string[];
  /** What the limit is by: the buckets' ids. */
  bucket_ids?: string[];
  read_only: boolean;
  created_at: string;
  last_used_at?: string | null;
  /** Made with an expiring token: it ends with it. */
  expires_at?: string | null;
  /** Made with a project-restricted token: only that project's buckets. */
  project_id?: string | null;
}

export interface InstanceVolume {
  volume_id: string;
  volume: string;
  path: string;
  read_only: boolean;
}

export interface Volume {
  id: string;
  name: string;
  project_id: string;
  size_bytes: number;
  used_bytes: number;
  filesystem: string;
  format: string;
  status: "available" | "attached";
  instance_id?: string | null;
  instance?: string | null;
  mount_path?: string | null;
  read_only: boolean;
  cloned_from?: string | null;
  created_at: string;
}

export interface AttachVolumeResponse {
  volume: Volume;
  effective: "now" | "next_start";
}

export interface Snapshot {
  id: string;
  name: string;
  project_id: string;
  volume_id: string;
  volume?: string | null;
  size_bytes: number;
  stored_bytes: number;
  description?: string | null;
  policy_id?: string | null;
  instance_snapshot_id?: string | null;
  created_at: string;
}

export interface BackupPolicy {
  id: string;
  name: string;
  project_id: string;
  volume_id: string;
  volume: string;
  cron: string;
  keep: number;
  last_run_at?: string | null;
  last_result?: string | null;
  last_error?: string | null;
  next_run_at?: string | null;
  snapshot_count: number;
  created_at: string;
}

export interface InstanceSnapshot {
  id: string;
  name: string;
  instance_id: string;
  rootfs_bytes: number;
  volumes: Snapshot[];
  created_at: string;
}
export interface Sandbox {
  id: string;
  template: string;
  state: "running" | "paused";
  instance_id: string;
  /** The instance's type. */
  type: "container" | "vm";
  project_id: string;
  key_id?: string | null;
  metadata: Record<string, string>;
  started_at: string;
  expires_at: string;
  commands: number;
}

export interface SandboxKey {
  id: string;
  name: string;
  prefix: string;
  project_id: string;
  max_sandboxes: number;
  creates_per_minute: number;
  /** Set when the key was made with an expiring token: it ends with it. */
  expires_at?: string | null;
  created_at: string;
}

export interface SandboxUsage {
  key_id?: string | null;
  sandboxes: number;
  sandbox_seconds: number;
  vcpu_seconds: number;
  commands: number;
}

export interface SandboxProcess {
  pid: number;
  tag?: string | null;
  cmd: string;
  args: string[];
  cwd?: string | null;
  started_at: string;
}

export interface SandboxFileEntry {
  name: string;
  path: string;
  type: "file" | "dir" | "symlink";
  size: number;
  mode: number;
  modified_at: string;
  symlink_target?: string | null;
}

export interface SandboxTemplate {
  id: string;
  name: string;
  project_id?: string | null;
  builtin: boolean;
  base?: string | null;
  cache_key?: string | null;
  digest?: string | null;
  commands: string[];
  size_bytes?: number | null;
  status: "building" | "ready" | "failed";
  description?: string | null;
  hits: number;
  misses: number;
  last_used_at?: string | null;
  build_seconds?: number | null;
  created_at: string;
}

export interface SandboxTemplateBuild {
  cache: "hit" | "miss";
  template: SandboxTemplate;
  log: string;
}

export interface SandboxPoolStats {
  project_id: string;
  template: string;
  size: number;
  ready: number;
  hits: number;
  misses: number;
}

/** A background task of the server (`GET /v1/system/tasks`). */
export interface BackgroundTask {
  name: string;
  description: string;
  period_ms: number;
  /** The server that runs it now (its lease holder). */
  holder?: string | null;
  runs: number;
  last_run?: TaskRun | null;
  next_run_at?: string | null;
  /** A run asked for that has not started yet. */
  run_requested_at?: string | null;
}

export interface TaskRun {
  server: string;
  started_at: string;
  elapsed_ms: number;
  outcome: "ok" | "error";
  details?: Record<string, unknown> | null;
  error?: string | null;
}
