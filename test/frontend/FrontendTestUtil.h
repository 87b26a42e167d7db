//===- FrontendTestUtil.h - Helpers for the frontend tests ------*- C++ -*-===//
//
// Part of the Loom project.
//
//===----------------------------------------------------------------------===//
//
// This file provides a fixture that parses `.loom` text from a string and
// captures every diagnostic as the text the user would see.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_TEST_FRONTEND_FRONTENDTESTUTIL_H
#define LOOM_TEST_FRONTEND_FRONTENDTESTUTIL_H

#include "frontend/AST.h"
#include "frontend/Config.h"
#include "frontend/Parser.h"
#include "frontend/Sema.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include "gtest/gtest.h"

#include <string>

namespace loom {
namespace frontend {

class FrontendTest : public ::testing::Test {
protected:
  FrontendTest() { sm.setDiagHandler(&FrontendTest::capture, &diags); }

  /// Parses `source` as the main buffer named test.loom.
  ModuleAST *parse(llvm::StringRef source) {
    sm.AddNewSourceBuffer(
        llvm::MemoryBuffer::getMemBufferCopy(source, "test.loom"),
        llvm::SMLoc());
    module = parseModule(sm);
    return module.get();
  }

  /// Parses and checks; returns true when both succeed.
  bool parseAndCheck(llvm::StringRef source) {
    return parse(source) && checkModule(*module, sm);
  }

  /// The first line of the first diagnostic, e.g.
  /// "test.loom:3:7: error: undefined name 'x2'".
  std::string firstError() const {
    return llvm::StringRef(diags).split('\n').first.str();
  }

  static void capture(const llvm::SMDiagnostic &diag, void *context) {
    auto *out = static_cast<std::string *>(context);
    llvm::raw_string_ostream os(*out);
    diag.print(/*ProgName=*/nullptr, os, /*ShowColors=*/false);
  }

  llvm::SourceMgr sm;
  std::string diags;
  std::unique_ptr<ModuleAST> module;
};

} // namespace frontend
} // namespace loom

#endif // LOOM_TEST_FRONTEND_FRONTENDTESTUTIL_H
