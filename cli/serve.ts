/** `big-uploader serve`: not implemented yet (see the issue tracker). */
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('big-uploader serve: not implemented yet\n');
  return 70;
}
