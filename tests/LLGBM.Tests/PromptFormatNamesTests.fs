module LLGBM.Tests.PromptFormatNamesTests

open Expecto
open LLGBM.Tasks
open LLGBM.Evaluation

[<Tests>]
let tests =
    testList "PromptFormatNames" [
        test "Name and Parse: bare and instructed, both ways; other names are errors" {
            Expect.equal (PromptFormatNames.Name PromptFormat.Bare) "bare" "bare"
            Expect.equal (PromptFormatNames.Name PromptFormat.WithInstruction) "instructed" "instructed"
            Expect.equal (PromptFormatNames.Parse "bare") PromptFormat.Bare "parse bare"
            Expect.equal (PromptFormatNames.Parse "instructed") PromptFormat.WithInstruction "parse instructed"

            Expect.throwsT<LLGBM.LlgbmException> (fun () -> PromptFormatNames.Parse "chat" |> ignore) "unknown"
        }
    ]
