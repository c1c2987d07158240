using System.Text;

namespace LLGBM.Tasks.Import;

/// <summary>
/// Turns the records of one public dataset's export (Hugging Face <c>datasets</c> layout, JSONL or Parquet) into task
/// examples. Each converter documents its prompt template; multiple-choice prompts are followed by one space and a
/// choice when scored (see <see cref="PromptFormat"/>).
/// </summary>
public abstract class DatasetConverter
{
    /// <summary>The format name given to <c>llgbm tasks import --format</c>, also the default task name.</summary>
    public abstract string Format { get; }

    /// <summary>The dataset on the Hugging Face Hub whose layout this converter reads (e.g. "allenai/ai2_arc").</summary>
    public abstract string Source { get; }

    /// <summary>Generation or multiple choice.</summary>
    public abstract TaskKind Kind { get; }

    /// <summary>How answers are extracted for exact matching (multiple-choice tasks: the choice letter).</summary>
    public virtual AnswerExtraction Extraction => AnswerExtraction.ChoiceLetter;

    /// <summary>The default domain of the imported task.</summary>
    public virtual string Domain => "commonsense";

    /// <summary>The task's instruction (see <see cref="TaskSpec.Instruction"/>).</summary>
    public abstract string Instruction { get; }

    /// <summary>The example for one record; a <see cref="TaskFormatException"/> naming the row when it is malformed.</summary>
    public abstract TaskExample Convert(DatasetRow row);

    /// <summary>
    /// The letter ("A", "B", …) of the choice whose label is <paramref name="key"/>, given the choices'
    /// <paramref name="labels"/> ("A".."E" or "1".."5" in ARC); by position, so numeric labels become letters too.
    /// </summary>
    protected static string LetterOfLabel(DatasetRow row, IReadOnlyList<string> labels, string key, string keyField)
    {
        for (var i = 0; i < labels.Count; i++)
            if (labels[i] == key)
                return TaskDirectory.Letter(i);
        throw row.Error($"\"{keyField}\" is \"{key}\", which is not one of the choice labels ({string.Join(", ", labels)}).");
    }

    /// <summary>The letter of the 0-based choice <paramref name="index"/>; an error when it is outside the choices.</summary>
    protected static string LetterOfIndex(DatasetRow row, int index, int count, string field, int offset = 0)
    {
        if (index - offset < 0 || index - offset >= count)
            throw row.Error($"\"{field}\" is {index}, expected {offset} to {offset + count - 1} for {count} choices.");
        return TaskDirectory.Letter(index - offset);
    }

    /// <summary>
    /// "Question: {question}" then one line per choice, "A. {choice}", then "Answer:" (the lm-evaluation-harness
    /// style with the choices listed, as for MMLU).
    /// </summary>
    protected static string QuestionWithChoices(string question, IReadOnlyList<string> choices)
    {
        var prompt = new StringBuilder("Question: ").Append(question).Append('\n');
        for (var i = 0; i < choices.Count; i++)
            prompt.Append(TaskDirectory.Letter(i)).Append(". ").Append(choices[i]).Append('\n');
        return prompt.Append("Answer:").ToString();
    }

    /// <summary>Checks a converted example with the task-directory rules, so an import never writes an unreadable task.</summary>
    protected TaskExample Checked(DatasetRow row, TaskExample example) =>
        TaskDirectory.Problem(example, Kind) is { } problem ? throw row.Error(problem) : example;
}
