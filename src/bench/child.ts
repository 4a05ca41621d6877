/**
 * A benchmark helper process forked from a module of src/bench (the floor server, the raw-socket
 * clients, the direct agents), spoken to over IPC, optionally pinned to a core. Forked from the
 * built JavaScript beside this file: `cattail bench` runs from dist/.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { pinProcess, type Pin } from './procs.js';

export class Child<Cmd, Ev extends { ev: string }> {
  readonly child: ChildProcess;
  private readonly module: string;
  constructor(module: string, pin: Pin, execArgv: readonly string[] = []) {
    this.module = module;
    this.child = fork(new URL(module, import.meta.url), execArgv.length > 0 ? { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [...execArgv] } : { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    if (pin !== undefined && this.child.pid !== undefined) pinProcess(this.child.pid, pin);
  }
  send(m: Cmd): void {
    this.child.send(m as object);
  }
  /** The next `ev` message; rejects after `timeoutMs`, or at once if the process ends first. */
  wait<E extends Ev['ev']>(ev: E, timeoutMs: number): Promise<Extract<Ev, { ev: E }>> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.child.off('message', on);
        this.child.off('exit', onExit);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`bench: ${this.module} sent no ${ev} within ${timeoutMs} ms`));
      }, timeoutMs);
      const on = (m: Ev): void => {
        if (m.ev !== ev) return;
        done();
        resolve(m as Extract<Ev, { ev: E }>);
      };
      const onExit = (code: number | null, signal: string | null): void => {
        done();
        reject(new Error(`bench: ${this.module} ended (${signal ?? String(code)}) before sending ${ev}`));
      };
      this.child.on('message', on);
      this.child.on('exit', onExit);
    });
  }
  kill(): void {
    this.child.kill('SIGKILL');
  }

  /** Ends the process and waits for it (bounded). */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGKILL');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000).unref())]);
  }
}
