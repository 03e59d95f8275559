import type mysql from 'mysql2/promise';
import type { HarnessToken } from '@sluice/testkit';

export declare const FUZZ_ACCOUNT: string;
export declare const FUZZ_DATABASE: string;
export declare const FUZZ_TABLE: string;
export declare const FUZZ_USER: HarnessToken & { readonly groups: readonly string[] };
export declare const STEADY_USER: HarnessToken & { readonly groups: readonly string[] };
export declare const ADMIN: { readonly host: string; readonly port: number; readonly user: string; readonly database: string };
export declare const TARGETS: { readonly app: { readonly upstream: string } };
export declare function prepareFuzzDatabase(): Promise<void>;
export declare function fuzzUpstreamConnections(admin: mysql.Connection): Promise<number>;
