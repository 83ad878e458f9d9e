/**
 * `big-uploader`: one command, several subcommands. This file only dispatches; each subcommand
 * lives in its own module and is loaded on demand so `--help` stays instant.
 */
import { UsageError } from './units.js';

const SUBCOMMANDS: Record<
  string,
  { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> }
> = {
  serve: {
    summary: 'run the upload server (Fastify) with the demo page',
    load: () => import('./serve.js'),
  },
  send: {
    summary: 'upload files to a big-uploader server, resuming where they stopped',
    load: () => import('./send.js'),
  },
  bench: {
    summary: "measure big-uploader against the machine's limits and peers",
    load: () => import('./bench.js'),
  },
};

function usage(): string {
  const lines = Object.entries(SUBCOMMANDS).map(([name, s]) => `  ${name.padEnd(8)} ${s.summary}`);
  return [
    'Usage: big-uploader <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `big-uploader <command> --help` for the options of one command.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${usage()}\n`);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-v') {
    const { readFile } = await import('node:fs/promises');
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const entry = SUBCOMMANDS[command];
  if (!entry) {
    process.stderr.write(`big-uploader: unknown command "${command}"\n\n${usage()}\n`);
    return 2;
  }
  let module: { run(argv: string[]): Promise<number> };
  try {
    module = await entry.load();
  } catch (error) {
    // The installed package ships no bench (its peers are dev dependencies): say where it runs.
    if (command === 'bench' && (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') {
      process.stderr.write(
        'big-uploader: the bench runs from a clone of the repository: `npm run bench`\n',
      );
      return 2;
    }
    throw error;
  }
  return module.run(rest);
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (error instanceof UsageError) {
    process.stderr.write(`big-uploader: ${error.message}\n`);
    process.exitCode = 2;
  } else {
    throw error;
  }
}
