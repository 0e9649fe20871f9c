// OCI linux.resources (runtime-spec config-linux.md), as kapsel applies it on
// cgroup v2. Shared by runtime/ (VM sizing) and agent/ (the cgroup manager).

export interface LinuxResources {
  devices?: DeviceCgroupRule[];
  memory?: MemoryResources;
  cpu?: CpuResources;
  pids?: PidsResources;
  blockIO?: BlockIOResources;
  hugepageLimits?: HugepageLimit[];
  unified?: Record<string, string>;
  network?: { classID?: number; priorities?: { name: string; priority: number }[] };
  rdma?: Record<string, { hcaHandles?: number; hcaObjects?: number }>;
}

export interface DeviceCgroupRule {
  allow: boolean;
  /** "a" (all), "c" or "b"; default "a". */
  type?: string;
  /** Absent or -1: any. */
  major?: number;
  minor?: number;
  /** Letters of "rwm"; default "rwm". */
  access?: string;
}

export interface MemoryResources {
  /** Bytes; -1 unlimited. */
  limit?: number;
  reservation?: number;
  /** memory + swap, as on cgroup v1; -1 unlimited. */
  swap?: number;
  kernel?: number;
  kernelTCP?: number;
  swappiness?: number;
  disableOOMKiller?: boolean;
  useHierarchy?: boolean;
  checkBeforeUpdate?: boolean;
}

export interface CpuResources {
  shares?: number;
  /** Microseconds per period; -1 unlimited. */
  quota?: number;
  burst?: number;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
  idle?: number;
}

export interface PidsResources {
  /** -1 (or 0) unlimited. */
  limit: number;
}

export interface WeightDevice {
  major: number;
  minor: number;
  weight?: number;
  leafWeight?: number;
}

export interface ThrottleDevice {
  major: number;
  minor: number;
  rate: number;
}

export interface BlockIOResources {
  weight?: number;
  leafWeight?: number;
  weightDevice?: WeightDevice[];
  throttleReadBpsDevice?: ThrottleDevice[];
  throttleWriteBpsDevice?: ThrottleDevice[];
  throttleReadIOPSDevice?: ThrottleDevice[];
  throttleWriteIOPSDevice?: ThrottleDevice[];
}

export interface HugepageLimit {
  /** e.g. "2MB", "1GB" (the suffix of hugetlb.<size>.max). */
  pageSize: string;
  limit: number;
}
