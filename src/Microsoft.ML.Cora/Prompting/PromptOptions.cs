
namespace Microsoft.ML.Cora.Prompting;

/// <summary>Prompt options. The defaults reproduce CoLLM/TALLRec's MovieLens template literally.</summary>
public sealed record PromptOptions
{
    /// <summary>
    /// CoLLM/TALLRec's template. Placeholders: <c>&lt;ItemTitleList&gt;</c>, <c>&lt;TargetItemTitle&gt;</c>,
    /// <c>&lt;ItemNoun&gt;</c>, <c>&lt;ItemNounPlural&gt;</c>; the CoLLM baseline also uses <c>&lt;UserID&gt;</c> and
    /// <c>&lt;TargetItemID&gt;</c> (one soft token each). <c>\n</c> is a literal backslash-n, as in the original.
    /// </summary>
    public const string DefaultTemplate =
        "#Question: A user has given high ratings to the following <ItemNounPlural>: <ItemTitleList>. Leverage the information to predict whether the user would enjoy the <ItemNoun> titled <TargetItemTitle>? Answer with \"Yes\" or \"No\". \\n#Answer:";

    /// <summary>CoLLM's template with soft-token slots for the user and the target item.</summary>
    public const string CollmTemplate =
        "#Question: A user has given high ratings to the following <ItemNounPlural>: <ItemTitleList>. Additionally, we have information about the user's preferences encoded in the feature <UserID>. Using all available information, make a prediction about whether the user would enjoy the <ItemNoun> titled <TargetItemTitle> with the feature <TargetItemID>? Answer with \"Yes\" or \"No\". \\n#Answer:";

    /// <summary>The prompt, with <c>&lt;ItemNounPlural&gt;</c>, <c>&lt;ItemNoun&gt;</c>, <c>&lt;ItemTitleList&gt;</c> and <c>&lt;TargetItemTitle&gt;</c> filled in per row (CoLLM's template also holds the <c>&lt;UserID&gt;</c> and <c>&lt;TargetItemID&gt;</c> slots of its soft tokens).</summary>
    public string Template { get; set; } = DefaultTemplate;
    /// <summary>Domain noun, singular ("movie", "book").</summary>
    public string ItemNoun { get; set; } = "movie";
    /// <summary>Domain noun, plural ("movies", "books").</summary>
    public string ItemNounPlural { get; set; } = "movies";
    /// <summary>How many of the most recent liked items to list (CoLLM uses 10).</summary>
    public int MaxHistory { get; set; } = 10;
    /// <summary>Stand-in for an empty history (CoLLM's spelling).</summary>
    public string EmptyHistory { get; set; } = "unkow";
    /// <summary>Token budget of a prompt (BOS included); 0 = the LLM's context length.</summary>
    public int MaxTokens { get; set; }
}
