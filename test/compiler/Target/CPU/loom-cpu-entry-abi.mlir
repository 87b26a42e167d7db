// RUN: loom-opt %s --split-input-file --loom-cpu-entry-abi --verify-diagnostics | FileCheck %s

// An entry becomes a memref function: inputs, params, then one buffer per
// output; the old body is a private function the new entry calls.
// CHECK-LABEL: func.func @main(
// CHECK-SAME: %[[X:.*]]: memref<?x4xf32> {loom.dims = ["B", 4], loom.name = "x", loom.role = "input"}
// CHECK-SAME: %[[W:.*]]: memref<4xf32> {loom.binding = "w", loom.name = "w", loom.role = "param"}
// CHECK-SAME: %[[Y:.*]]: memref<?x4xf32> {loom.dims = ["B", 4], loom.name = "y", loom.role = "output"}
// CHECK-SAME: attributes {llvm.emit_c_interface}
// CHECK: %[[TX:.*]] = bufferization.to_tensor %[[X]] restrict
// CHECK: %[[TW:.*]] = bufferization.to_tensor %[[W]] restrict
// CHECK: %[[R:.*]] = call @main.body(%[[TX]], %[[TW]])
// CHECK: bufferization.materialize_in_destination %[[R]] in restrict writable %[[Y]]
// CHECK: return
// CHECK-LABEL: func.func private @main.body
func.func @main(%x: tensor<?x4xf32> {loom.role = "input", loom.name = "x", loom.dims = ["B", 4]},
                %w: tensor<4xf32> {loom.role = "param", loom.name = "w", loom.binding = "w"})
    -> (tensor<?x4xf32> {loom.role = "output", loom.name = "y", loom.dims = ["B", 4]}) {
  %0 = linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} outs(%x : tensor<?x4xf32>) {
  ^bb0(%o: f32):
    linalg.yield %o : f32
  } -> tensor<?x4xf32>
  return %0 : tensor<?x4xf32>
}

// -----

// A state result is copied back into the state's own buffer, without
// `restrict`, after the outputs.
// CHECK-LABEL: func.func @step(
// CHECK-SAME: %[[X:.*]]: memref<4xf32> {{.*}}, %[[S:.*]]: memref<4xf32> {{.*}}loom.role = "state"{{.*}}, %[[Y:.*]]: memref<4xf32>
// State buffers are writable, so that a state can be updated in place.
// CHECK: bufferization.to_tensor %[[S]] restrict writable
// CHECK: %[[R:.*]]:2 = call @step.body
// CHECK: bufferization.materialize_in_destination %[[R]]#0 in restrict writable %[[Y]]
// CHECK: bufferization.materialize_in_destination %[[R]]#1 in writable %[[S]]
func.func @step(%x: tensor<4xf32> {loom.role = "input", loom.name = "x"},
                %s: tensor<4xf32> {loom.role = "state", loom.name = "acc", loom.binding = "acc"})
    -> (tensor<4xf32> {loom.role = "output", loom.name = "y"},
        tensor<4xf32> {loom.role = "state", loom.name = "acc"}) {
  return %s, %x : tensor<4xf32>, tensor<4xf32>
}

// -----

// A state's new value computed from another state's old value (b = old a)
// is snapshotted before any write-back; one that reads no other state
// (a = x) is written back directly.
// CHECK-LABEL: func.func @two_states(
// CHECK-SAME: %arg0: memref<4xf32> {{.*}}, %[[SA:arg1]]: memref<4xf32> {{.*}}, %[[SB:arg2]]: memref<4xf32>
// CHECK: %[[R:.*]]:3 = call @two_states.body
// CHECK-NOT: alloc_tensor() copy(%[[R]]#1)
// CHECK: %[[B:.*]] = bufferization.alloc_tensor() copy(%[[R]]#2)
// CHECK-NOT: alloc_tensor
// CHECK: bufferization.materialize_in_destination %[[R]]#1 in writable %[[SA]] :
// CHECK: bufferization.materialize_in_destination %[[B]] in writable %[[SB]] :
func.func @two_states(%x: tensor<4xf32> {loom.role = "input", loom.name = "x"},
                      %a: tensor<4xf32> {loom.role = "state", loom.name = "a"},
                      %b: tensor<4xf32> {loom.role = "state", loom.name = "b"})
    -> (tensor<4xf32> {loom.role = "output", loom.name = "y"},
        tensor<4xf32> {loom.role = "state", loom.name = "a"},
        tensor<4xf32> {loom.role = "state", loom.name = "b"}) {
  return %x, %x, %a : tensor<4xf32>, tensor<4xf32>, tensor<4xf32>
}

// -----

// Private functions (sub-graphs) are not entries and stay as they are.
// CHECK-LABEL: func.func private @helper(%{{.*}}: tensor<4xf32>) -> tensor<4xf32>
func.func private @helper(%x: tensor<4xf32>) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

// expected-error@+1 {{state result 'missing' has no state argument}}
func.func @bad_state(%x: tensor<4xf32> {loom.role = "input", loom.name = "x"})
    -> (tensor<4xf32> {loom.role = "state", loom.name = "missing"}) {
  return %x : tensor<4xf32>
}

// -----

// expected-error@+1 {{result 0 has no loom.role of 'output' or 'state'}}
func.func @no_role(%x: tensor<4xf32> {loom.role = "input", loom.name = "x"}) -> tensor<4xf32> {
  return %x : tensor<4xf32>
}

// -----

// expected-error@+1 {{entry signature must use ranked tensors only}}
func.func @not_tensor(%x: f32) {
  return
}

// -----

// expected-error@+1 {{state 'acc' changes type across the call}}
func.func @state_type(%x: tensor<8xf32> {loom.role = "input", loom.name = "x"},
                      %s: tensor<4xf32> {loom.role = "state", loom.name = "acc"})
    -> (tensor<8xf32> {loom.role = "state", loom.name = "acc"}) {
  return %x : tensor<8xf32>
}

// -----

// An output whose symbolic size the graph does not prove is compared with the
// runtime's buffer and written only when they agree; the entry returns 1
// otherwise.
// CHECK-LABEL: func.func @unproven(
// CHECK-SAME: %[[X:.*]]: memref<?xf32> {{.*}}, %[[Y:.*]]: memref<?xf32> {{.*}}) -> i32
// CHECK: %[[R:.*]] = call @unproven.body
// CHECK: %[[C:.*]] = tensor.dim %[[R]], %{{.*}}
// CHECK: %[[A:.*]] = memref.dim %[[Y]], %{{.*}}
// CHECK: %[[SAME:.*]] = arith.cmpi eq, %[[C]], %[[A]]
// CHECK: %[[OK:.*]] = arith.andi %{{.*}}, %[[SAME]]
// CHECK: %[[COPY:.*]] = bufferization.alloc_tensor() copy(%[[R]])
// CHECK: scf.if %[[OK]] {
// CHECK-NEXT: bufferization.materialize_in_destination %[[COPY]] in restrict writable %[[Y]]
// CHECK: %[[CODE:.*]] = arith.select %[[OK]], %{{.*}}, %{{.*}} : i32
// CHECK: return %[[CODE]] : i32
func.func @unproven(%x: tensor<?xf32> {loom.role = "input", loom.name = "x", loom.dims = ["B"]})
    -> (tensor<?xf32> {loom.role = "output", loom.name = "y", loom.dims = ["B"],
                       loom.unproven_dims = array<i64: 0>}) {
  %c0 = arith.constant 0 : index
  %c3 = arith.constant 3 : index
  %0 = tensor.extract_slice %x[%c0] [%c3] [1] : tensor<?xf32> to tensor<?xf32>
  return %0 : tensor<?xf32>
}
