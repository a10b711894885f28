/**
 * Runs each system once per round, in the same order every round (A B A B…),
 * so slow drift of a shared machine spreads over all systems instead of
 * landing on whichever ran last.
 */
export async function alternate<S extends string, R>(
  systems: readonly S[],
  rounds: number,
  measure: (system: S, round: number) => Promise<R>,
): Promise<Map<S, R[]>> {
  const results = new Map<S, R[]>(systems.map((system) => [system, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const system of systems) results.get(system)!.push(await measure(system, round));
  }
  return results;
}
