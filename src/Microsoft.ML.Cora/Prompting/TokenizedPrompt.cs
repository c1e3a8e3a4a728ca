
namespace Microsoft.ML.Cora.Prompting;

/// <summary>A tokenised prompt; <see cref="Slots"/> are positions where soft tokens replace the placeholder id.</summary>
public sealed record TokenizedPrompt(int[] Ids, (int position, string slot)[] Slots, int TitlesUsed);
