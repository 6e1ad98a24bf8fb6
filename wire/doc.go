// Package wire holds the JSON that a machine's live environment (package
// fleet), the fleet server (package server) and the fleet CLI speak, with the
// checks each side applies, so the two sides cannot drift. It imports nothing
// of bty's.
//
//	machine                          server                       CLI
//	GET  /pxe/<mac>/plan      <-    Plan (plan_id, agent_token)
//	POST /pxe/<mac>/inventory ->    Inventory
//	POST /pxe/<mac>/progress  ->    Progress
//	POST /pxe/<mac>/status    ->    Status (plan_id, sha256, class, bytes_fetched)
//	                                Machine, Cycle, Event   ->   bty fleet ls|show|events
//	                                MachineUpsert           <-   bty fleet set
//
// Field names follow bty-web's, the server this one replaces; bty's additions
// are optional fields that older peers ignore (docs/server-protocol.md,
// docs/fleet.md).
package wire
