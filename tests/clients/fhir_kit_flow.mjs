// The main flows with fhir-kit-client (npm), run by test_fhir_kit_client.py:
//   node fhir_kit_flow.mjs <base url> <flows.json> <bearer token>
// Prints one JSON object summarising what the server answered.
import { readFileSync } from 'node:fs';
import { Client } from 'fhir-kit-client';

const [baseUrl, flowsFile, token] = process.argv.slice(2);
const flows = JSON.parse(readFileSync(flowsFile, 'utf8'));
const client = new Client({ baseUrl, bearerToken: token });

const created = await client.create({ resourceType: 'Patient', body: flows.patient });
const read = await client.read({ resourceType: 'Patient', id: created.id });
const updated = await client.update({
  resourceType: 'Patient', id: created.id, body: { ...read, gender: 'female' },
});
for (const observation of flows.observations) {
  await client.create({
    resourceType: 'Observation',
    body: { ...observation, subject: { reference: `Patient/${created.id}` } },
  });
}
let page = await client.search({
  resourceType: 'Observation', searchParams: { patient: created.id, _count: 4, _sort: 'date' },
});
const seen = [];
const nextLinks = [];
for (;;) {
  for (const entry of page.entry ?? []) seen.push(entry.resource.effectiveDateTime);
  const next = (page.link ?? []).find((link) => link.relation === 'next');
  if (!next) break;
  nextLinks.push(next.url);
  page = await client.nextPage({ bundle: page });
}
const byNhs = await client.search({
  resourceType: 'Patient', searchParams: { identifier: flows.identifier },
});
const compartment = await client.search({
  compartment: { resourceType: 'Patient', id: created.id }, resourceType: 'Observation',
  searchParams: { _summary: 'count' },
});
const transaction = await client.transaction({ body: flows.transaction });
const everything = await client.operation({
  name: '$everything', resourceType: 'Patient', id: created.id, method: 'GET',
});
console.log(JSON.stringify({
  createdVersion: created.meta.versionId,
  updatedVersion: updated.meta.versionId,
  gender: updated.gender,
  seen,
  nextLinks,
  byNhs: (byNhs.entry ?? []).map((entry) => entry.resource.id),
  patientId: created.id,
  compartmentTotal: compartment.total,
  transactionType: transaction.type,
  transactionStatuses: transaction.entry.map((entry) => entry.response.status),
  everythingTypes: [...new Set(everything.entry.map((entry) => entry.resource.resourceType))].sort(),
  everythingCount: everything.entry.length,
}));
