/**
 * A small Dockerfile reader for tests on machines without a Docker engine:
 * the instructions of each stage with their flags and arguments, in the exec
 * (JSON) or shell form, following Docker's rules for comments, parser
 * directives, line continuations and ARG substitution in FROM.
 */

export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY... */
  keyword: string;
  /** `--name=value` flags before the arguments (COPY --from, HEALTHCHECK --interval...). */
  flags: Record<string, string>;
  /** The arguments after the flags, as written (continuations joined). */
  text: string;
  /** The exec form's array when the arguments are a JSON array of strings. */
  json?: string[];
  line: number;
}

export interface Stage {
  /** `AS name`, or the stage's index as a string. */
  name: string;
  /** The base image after substituting global ARG defaults. */
  image: string;
  instructions: Instruction[];
}

export interface Dockerfile {
  directives: Record<string, string>;
  /** ARGs before the first FROM, with their defaults. */
  globalArgs: Record<string, string | undefined>;
  stages: Stage[];
}

const DIRECTIVE = /^#\s*([a-zA-Z]+)\s*=\s*(.*?)\s*$/;

export function parseDockerfile(source: string): Dockerfile {
  const lines = source.split(/\r?\n/);
  const directives: Record<string, string> = {};
  let index = 0;
  // Parser directives: only at the very top, before any comment or instruction.
  for (; index < lines.length; index++) {
    const match = DIRECTIVE.exec(lines[index]!);
    if (!match) break;
    directives[match[1]!.toLowerCase()] = match[2]!;
  }
  const escape = directives.escape ?? '\\';

  const instructions: Instruction[] = [];
  let pending = '';
  let startLine = 0;
  for (; index < lines.length; index++) {
    const raw = lines[index]!;
    const trimmed = raw.trim();
    // Comment lines are removed before continuations are joined, even inside one.
    if (trimmed.startsWith('#')) continue;
    if (pending === '' && trimmed === '') continue;
    if (pending === '') startLine = index + 1;
    if (trimmed.endsWith(escape)) {
      pending += trimmed.slice(0, -escape.length) + ' ';
      continue;
    }
    pending += trimmed;
    instructions.push(parseInstruction(pending, startLine));
    pending = '';
  }
  if (pending.trim() !== '') instructions.push(parseInstruction(pending, startLine));

  const globalArgs: Record<string, string | undefined> = {};
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const words = instruction.text.split(/\s+/);
      const image = substitute(words[0] ?? '', globalArgs);
      const as = words.length >= 3 && words[1]!.toUpperCase() === 'AS' ? words[2]! : undefined;
      stages.push({ name: as ?? String(stages.length), image, instructions: [instruction] });
      continue;
    }
    const stage = stages[stages.length - 1];
    if (stage) {
      stage.instructions.push(instruction);
    } else if (instruction.keyword === 'ARG') {
      const [name, value] = splitArg(instruction.text);
      globalArgs[name] = value;
    } else {
      throw new Error(`line ${instruction.line}: ${instruction.keyword} before the first FROM`);
    }
  }
  return { directives, globalArgs, stages };
}

function parseInstruction(text: string, line: number): Instruction {
  const match = /^(\S+)\s*(.*)$/s.exec(text.trim());
  if (!match) throw new Error(`line ${line}: empty instruction`);
  const keyword = match[1]!.toUpperCase();
  let rest = match[2]!.trim();
  const flags: Record<string, string> = {};
  for (;;) {
    const flag = /^--([a-z-]+)(?:=(\S*))?\s*/.exec(rest);
    if (!flag) break;
    flags[flag[1]!] = flag[2] ?? 'true';
    rest = rest.slice(flag[0].length);
  }
  const instruction: Instruction = { keyword, flags, text: rest, line };
  const json = execForm(rest);
  if (json) instruction.json = json;
  return instruction;
}

/** The exec form: a JSON array of strings; anything else is the shell form. */
export function execForm(text: string): string[] | undefined {
  if (!text.startsWith('[')) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value;
  } catch {
    // not JSON: Docker runs it in the shell form
  }
  return undefined;
}

function splitArg(text: string): [string, string | undefined] {
  const eq = text.indexOf('=');
  if (eq < 0) return [text.trim(), undefined];
  return [text.slice(0, eq).trim(), unquote(text.slice(eq + 1).trim())];
}

function unquote(value: string): string {
  const quoted = /^"(.*)"$/.exec(value) ?? /^'(.*)'$/.exec(value);
  return quoted ? quoted[1]! : value;
}

/** `$NAME`, `${NAME}` and `${NAME:-default}` with the given values. */
export function substitute(text: string, values: Record<string, string | undefined>): string {
  return text.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (
      _whole,
      braced: string | undefined,
      fallback: string | undefined,
      bare: string | undefined,
    ) => {
      const value = values[(braced ?? bare)!];
      return value !== undefined && value !== '' ? value : (fallback ?? '');
    },
  );
}

/** Instructions of one keyword in a stage. */
export function instructionsOf(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((i) => i.keyword === keyword);
}

/** Splits COPY/ADD arguments into sources and destination (exec or shell form). */
export function copyPaths(instruction: Instruction): { sources: string[]; destination: string } {
  const words = instruction.json ?? instruction.text.split(/\s+/).filter(Boolean);
  if (words.length < 2)
    throw new Error(`line ${instruction.line}: COPY needs a source and a destination`);
  return { sources: words.slice(0, -1), destination: words[words.length - 1]! };
}

/** Whether a path of the build context is excluded by .dockerignore patterns (`!` re-includes). */
export function isIgnored(path: string, patterns: string[]): boolean {
  let ignored = false;
  for (const raw of patterns) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    const pattern = (negate ? line.slice(1) : line).replace(/^\/+|\/+$/g, '');
    if (matchesPathOrParent(pattern, path)) ignored = !negate;
  }
  return ignored;
}

function matchesPathOrParent(pattern: string, path: string): boolean {
  const regex = globToRegex(pattern);
  const parts = path.replace(/^\.\/|\/+$/g, '').split('/');
  for (let n = parts.length; n >= 1; n--) if (regex.test(parts.slice(0, n).join('/'))) return true;
  return false;
}

function globToRegex(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      i++;
      if (pattern[i + 1] === '/') {
        out += '(?:.*/)?';
        i++;
      } else out += '.*';
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}
