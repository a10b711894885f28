/** The steps of a deploy, in order, as the step list and the record show them. */
export const STEPS = [
  { name: 'validate', label: 'check the environment file' },
  { name: 'lock', label: 'take the deploy lock' },
  { name: 'active', label: 'read the active slot from the proxy' },
  { name: 'snapshot', label: 'snapshot the database' },
  { name: 'migrate', label: 'apply migrations' },
  { name: 'start', label: 'start the new version on the idle slot' },
  { name: 'health', label: 'wait for it to be healthy and report the version' },
  { name: 'switch', label: 'switch traffic (health-gated)' },
  { name: 'verify', label: 'watch the new slot through the proxy' },
  { name: 'stop-old', label: 'stop the old slot' },
  { name: 'rollback', label: 'roll back to the old slot' },
  { name: 'restore', label: 'put back what served on the idle slot before' },
] as const;

export type StepName = (typeof STEPS)[number]['name'];

export function labelOf(name: StepName): string {
  return STEPS.find((s) => s.name === name)!.label;
}
