module LLGBM.Tests.AnswerExtractorTests

open Expecto
open LLGBM.Tasks

let private extract mode text =
    AnswerExtractor.Extract(mode, text) |> Option.ofObj

/// Checks every (completion, expected) pair of one extraction mode.
let private cases mode (pairs: (string * string option) list) =
    for (text, expected) in pairs do
        Expect.equal (extract mode text) expected $"{mode} of %A{text}"

let private spec kind extraction =
    TaskSpec(Name = "t", Domain = "d", Kind = kind, Extraction = extraction)

let private example answer =
    TaskExample(Prompt = "q", Answer = answer)

/// A GSM8K-style reference: the worked solution, then "#### answer".
let private gsm8kReference =
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    + "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"

[<Tests>]
let tests =
    testList "AnswerExtractor" [
        test "Extract FirstLine: the text before the first newline, trimmed; nothing when it is empty" {
            cases AnswerExtraction.FirstLine [
                "42", Some "42"
                "  Paris  \nThe capital of France.", Some "Paris"
                "a b\r\nc", Some "a b"
                "no newline at all ", Some "no newline at all"
                "", None
                "   ", None
                "\nlater line", None
            ]
        }

        test "Extract ChoiceLetter: bare, bracketed and announced letters, else the first standalone capital A-J" {
            cases AnswerExtraction.ChoiceLetter [
                "B", Some "B"
                " (B)", Some "B"
                "B.", Some "B"
                "c", Some "C"
                "(d):", Some "D"
                "The answer is B", Some "B"
                "The answer is (C).", Some "C"
                "answer: b", Some "B"
                "Answer - e", Some "E"
                "I'm sure it is D, not A", Some "D"
                "B) Paris", Some "B"
                "Clearly, option J fits", Some "J"
                "the answer is Brazil", None
                "K", None
                "Zebra", None
                "", None
            ]
        }

        test "Extract YesNo: the first of yes/no/true/false in any case, true as yes and false as no" {
            cases AnswerExtraction.YesNo [
                "Yes", Some "yes"
                "no.", Some "no"
                "TRUE", Some "yes"
                " false, it is not", Some "no"
                "Not sure, but yes; no doubt", Some "yes"
                "Nothing is known. Yesterday: no", Some "no"
                "maybe", None
                "", None
            ]
        }

        test "Extract FinalNumber: after #### when present, else the last number, in canonical form" {
            cases AnswerExtraction.FinalNumber [
                "42", Some "42"
                "-3", Some "-3"
                "1,234", Some "1234"
                "$1,234.50.", Some "1234.5"
                "3.50", Some "3.5"
                "3.0", Some "3"
                "007", Some "7"
                "0.25", Some "0.25"
                "-0", Some "0"
                "It costs -$5 in total.", Some "-5"
                "First 12 apples, then 7 pears, so 19.", Some "19"
                "Pages 3-4", Some "4"
                "#### 72\nbut later 5", Some "72"
                "The result: ####   1,000", Some "1000"
                "#### none, so 8", Some "8"
                gsm8kReference, Some "72"
                "no digits", None
                "", None
            ]
        }

        test "Matches: both sides are extracted; numbers compare by value, GSM8K references by their #### answer" {
            let numbers = spec TaskKind.Generation AnswerExtraction.FinalNumber
            Expect.isTrue (AnswerExtractor.Matches(numbers, example gsm8kReference, "So she sold 72 clips.")) "72"
            Expect.isTrue (AnswerExtractor.Matches(numbers, example "3.5", "It is $3.50.")) "3.50 = 3.5"
            Expect.isTrue (AnswerExtractor.Matches(numbers, example "1234", "1,234")) "thousands separator"
            Expect.isFalse (AnswerExtractor.Matches(numbers, example gsm8kReference, "48 + 24 = 71")) "wrong number"
            Expect.isFalse (AnswerExtractor.Matches(numbers, example "3", "-3")) "sign"
            Expect.isFalse (AnswerExtractor.Matches(numbers, example "3", "three")) "no number"
        }

        test "Matches: first lines match exactly, yes/no by meaning, letters of multiple-choice tasks by letter" {
            let lines = spec TaskKind.Generation AnswerExtraction.FirstLine
            Expect.isTrue (AnswerExtractor.Matches(lines, example "Paris", " Paris\nmore")) "first line"
            Expect.isFalse (AnswerExtractor.Matches(lines, example "Paris", "paris")) "case matters"
            Expect.isFalse (AnswerExtractor.Matches(lines, example "", "")) "an empty answer is no answer"
            let yesNo = spec TaskKind.Generation AnswerExtraction.YesNo
            Expect.isTrue (AnswerExtractor.Matches(yesNo, example "True", "yes, it is")) "true = yes"
            Expect.isFalse (AnswerExtractor.Matches(yesNo, example "yes", "No")) "no"
            // a multiple-choice task reads letters whatever its Extraction says
            let choice = spec TaskKind.MultipleChoice AnswerExtraction.FirstLine
            Expect.isTrue (AnswerExtractor.Matches(choice, example "C", "The answer is (c)")) "letter"
            Expect.isFalse (AnswerExtractor.Matches(choice, example "C", "B")) "other letter"
        }
    ]
