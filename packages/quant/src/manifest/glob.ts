/**
 * Globs over canonical tensor names (`blk.12.ffn_down.weight`): `*` matches within one
 * dot-separated part, `**` across parts, `?` one character other than a dot, `{a,b}` either
 * alternative (no nesting). Everything else matches itself.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  let inBraces = false;
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^.]*';
    } else if (ch === '?') re += '[^.]';
    else if (ch === '{') {
      if (inBraces) throw new Error(`nested "{" at ${i} in ${JSON.stringify(glob)}: alternatives do not nest`);
      inBraces = true;
      re += '(?:';
    } else if (ch === '}') {
      if (!inBraces) throw new Error(`"}" at ${i} without "{" in ${JSON.stringify(glob)}`);
      inBraces = false;
      re += ')';
    } else if (ch === ',' && inBraces) re += '|';
    else re += ch.replace(/[\\^$.|+()[\]]/g, '\\$&');
  }
  if (inBraces) throw new Error(`unclosed "{" in ${JSON.stringify(glob)}`);
  return new RegExp(`^${re}$`, 'u');
}

/** Whether a pattern can only ever match itself (a literal tensor name). */
export function isLiteralGlob(glob: string): boolean {
  return !/[*?{]/.test(glob);
}
