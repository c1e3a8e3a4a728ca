namespace Cora.Cli;

/// <summary>An item and its title (the liked history of GET /recommend/{user}).</summary>
public sealed record TitledItem(int Item, string Title);
