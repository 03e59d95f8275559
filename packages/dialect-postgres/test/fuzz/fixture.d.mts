import type pg from 'pg';
import type { HarnessToken } from '@sluice/testkit';

export declare const FUZZ_ROLE: string;
export declare const FUZZ_DATABASE: string;
export declare const FUZZ_TABLE: string;
export declare const FUZZ_USER: HarnessToken & { readonly groups: readonly string[] };
export declare const STEADY_USER: HarnessToken & { readonly groups: readonly string[] };
export declare const ADMIN_URL: string;
export declare const TARGETS: { readonly app: { readonly upstream: string }; readonly steady: { readonly upstream: string } };
export declare function prepareFuzzDatabase(): Promise<void>;
export declare function fuzzUpstreamConnections(admin: pg.Client): Promise<number>;
